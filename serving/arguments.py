"""The command-line options of the commands over a published tree (query, ask, serve, demo, publish), and
their argparse `type=`s: a bad value is a usage error (exit 2) naming the option, before anything is read.
Request bounds are serving.limits', the same as over HTTP."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import fsspec

from serving.limits import LimitError, check_k, check_text
from serving.manifest import POINTER_NAME, ManifestError, check_name, check_snapshot_id
from serving.reader import LATEST

T = TypeVar("T")


def _usage(check: Callable[..., T], *args: Any) -> T:
    """`check(*args)`, its refusal turned into an argparse usage error (exit 2)."""
    try:
        return check(*args)
    except (LimitError, ManifestError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def name_argument(value: str) -> str:
    """A catalog name: one safe path component."""
    return _usage(check_name, value, "name")


def snapshot_argument(value: str) -> str:
    """A snapshot id (not the pointer's name)."""
    return _usage(check_snapshot_id, value, "snapshot id")


def version_argument(value: str) -> str:
    """'latest', or a snapshot id."""
    if value == POINTER_NAME:
        raise argparse.ArgumentTypeError(f"{value!r} names the pointer file, not a snapshot: '{LATEST}' (the "
                                         "default) follows it")
    return value if value == LATEST else snapshot_argument(value)


def location_argument(value: str) -> str:
    """An fsspec URL or a local folder (one that does not exist yet is fine)."""
    protocol, path = fsspec.core.split_protocol(value)
    if protocol in (None, "file", "local") and Path(path).exists() and not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"{value} is not a folder")
    return value


def folder_argument(value: str) -> Path:
    """A local folder (one that does not exist yet is fine)."""
    if Path(value).exists() and not Path(value).is_dir():
        raise argparse.ArgumentTypeError(f"{value} is not a folder")
    return Path(value)


def k_argument(value: str) -> int:
    try:
        k = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    return _usage(check_k, k)


def text_argument(value: str) -> str:
    return _usage(check_text, value)


def add_reader_arguments(parser: argparse.ArgumentParser,
                         version_help: str = f"a snapshot id, or '{LATEST}'") -> None:
    """--root, --catalog, --version, --cache: the options of a command that opens a Reader."""
    parser.add_argument("--root", default="published", type=location_argument,
                        help="fsspec URL of the published tree")
    parser.add_argument("--catalog", required=True, type=name_argument)
    parser.add_argument("--version", default=LATEST, type=version_argument, help=version_help)
    parser.add_argument("--cache", type=folder_argument,
                        help="local snapshot cache (default: $SEMREC_CACHE or ~/.cache/semrec)")
