"""Where a catalog's files are, and how they open: local paths fast, everything else through fsspec.

A catalog's `source` (params `catalogs.<key>.source`) is a file or a folder: a repo-relative or
absolute path, or an fsspec URL (s3://, gs://, https://...). A plug-in names its files relative to
it. A location may also be compressed (.gz, .zst, .bz2, .xz: by suffix) or a member of a zip
(`zip://<member>::<archive>`, fsspec's chained-URL spelling, read with zipfile): such a file is read front to back, as one
split, since a byte range of it cannot be found without reading what comes before.
"""

from __future__ import annotations

import os
import zipfile
from typing import IO

import fsspec
from fsspec.utils import infer_compression

ZIP_PREFIX = "zip://"


def is_url(path: str) -> bool:
    return "://" in path or "::" in path


def resolve(source: str, path: str | None) -> str:
    """A plug-in's file `path` under the catalog's `source` folder; `None`: the source (a file) itself."""
    if path is None:
        return source
    if is_url(path) or os.path.isabs(path):
        return path
    return f"{source.rstrip('/')}/{path}" if is_url(source) else os.path.join(source, path)


def zip_member(archive: str, member: str) -> str:
    """The location of `member` inside the zip file at `archive`."""
    return f"{ZIP_PREFIX}{member}::{archive}"


def compression(location: str) -> str | None:
    """The compression its suffix names; a .zip is an archive whose members are named, not a compression."""
    found = infer_compression(location)
    return None if found == "zip" else found


def is_local(location: str) -> bool:
    return not is_url(location) and compression(location) is None


def splittable(location: str) -> bool:
    """Whether a byte range of the file can be read on its own (a plain file, local or remote)."""
    return "::" not in location and compression(location) is None


def split_member(location: str) -> tuple[str, str] | None:
    """(archive, member) of a zip member's location, else None."""
    if not location.startswith(ZIP_PREFIX) or "::" not in location:
        return None
    member, archive = location[len(ZIP_PREFIX):].split("::", 1)
    return archive, member


def open_source(location: str) -> IO[bytes]:
    """The file at `location`, opened for reading bytes (decompressed where its suffix says so)."""
    if is_local(location):
        return open(location, "rb")
    if inside := split_member(location):  # zipfile, not fsspec's zip filesystem: its archive closes when it is freed
        archive, member = inside
        return zipfile.ZipFile(open_source(archive)).open(member)
    return fsspec.open(location, "rb", compression=compression(location)).open()


def exists(location: str) -> bool:
    if is_local(location):
        return os.path.isfile(location)
    if inside := split_member(location):
        archive, member = inside
        if not exists(archive):
            return False
        with open_source(archive) as f:
            return member in zipfile.ZipFile(f).namelist()
    fs, path = fsspec.core.url_to_fs(location)
    return fs.isfile(path)


def size(location: str) -> int:
    """Bytes at `location` as stored (compressed files: their compressed size)."""
    if is_local(location):
        return os.path.getsize(location)
    if inside := split_member(location):
        archive, member = inside
        with open_source(archive) as f:
            return zipfile.ZipFile(f).getinfo(member).compress_size
    fs, path = fsspec.core.url_to_fs(location)
    return int(fs.size(path))
