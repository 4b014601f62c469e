"""fetch: files come out of a wheel only when their checksums match."""

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from pipelines.fetch import ChecksumError, extract, sha256_hex


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
