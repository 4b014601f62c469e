"""Read params.yaml: one stage's section (each stage reads only its own), and a catalog's block.

A catalog's block (`catalogs.<key>`, README "Adding a catalog") names its `source` (a file or folder:
repo-relative, absolute or an fsspec URL; the ingest stage's dependency, never a stage output), its
`ingest` plug-in and options, and optional overrides of the `pairs` and `train` sections for this
catalog. A mistake is a ParamsError naming the key: one line, exit 2.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from serving.errors import UsageError

DEFAULT_PARAMS = Path("params.yaml")
BLOCK_REQUIRED = ("source", "ingest")
BLOCK_OVERRIDES = ("pairs", "train")  # sections a catalog block may override


T = TypeVar("T")


class ParamsError(UsageError):
    """A params.yaml value that cannot be used; the message starts with its key."""


def typed_section(cls: type[T], section: Any, key: str) -> T:
    """The frozen dataclass `cls` from params section `key`: every field without a default present, no unknown
    key, each value of its field's type (bool, int, float, str, a tuple of one of them, a dict, or a nested
    dataclass); an int is a float where a float is wanted, a bool never a number. The one way a stage types its
    section; a ParamsError names the key."""
    if not isinstance(section, Mapping):
        raise ParamsError(f"{key}: expected a mapping, not {section!r}")
    fields = typing.get_type_hints(cls)
    names = [field.name for field in dataclasses.fields(cls)]
    if unknown := sorted(set(section) - set(names)):
        raise ParamsError(f"{key}: unknown key(s) {unknown}; expected {names}")
    if missing := [f.name for f in dataclasses.fields(cls) if f.name not in section
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]:
        raise ParamsError(f"{key}: missing key(s) {missing}")
    try:
        return cls(**{name: typed_value(fields[name], section[name], f"{key}.{name}") for name in section})
    except ValueError as err:  # the dataclass's own checks
        raise ParamsError(f"{key}: {err}") from err


def typed_value(kind: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return typed_section(kind, value, key)
    if typing.get_origin(kind) is dict:  # a section handed on whole to what reads it (e.g. IndexSettings)
        if not isinstance(value, Mapping):
            raise ParamsError(f"{key}: expected a mapping, not {value!r}")
        return dict(value)
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"{key}: expected a list, not {value!r}")
        return tuple(typed_value(typing.get_args(kind)[0], item, f"{key}[{i}]") for i, item in enumerate(value))
    wanted = (int, float) if kind is float else (kind,)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, wanted):
        raise ParamsError(f"{key}: expected {kind.__name__}, not {value!r}")
    return kind(value)


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, not {type(params).__name__}")
    return params


def load_section(section: str, path: str | Path = DEFAULT_PARAMS) -> Any:
    """Return `params.yaml[section]`, failing with the file and section named when it is absent."""
    params = load_params(path)
    if section not in params:
        raise ParamsError(f"{path}: no section {section!r} (have: {', '.join(sorted(params))})")
    return params[section]


def catalog_block(catalog: str, path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """`catalogs.<catalog>`, checked: the required keys present, no unknown key."""
    catalogs = load_section("catalogs", path)
    if not isinstance(catalogs, dict):
        raise ParamsError(f"catalogs: expected a mapping of catalog key -> block, not {type(catalogs).__name__}")
    if catalog not in catalogs:
        raise ParamsError(f"catalogs: no catalog {catalog!r} (have: {', '.join(catalogs)})")
    block = catalogs[catalog]
    where = f"catalogs.{catalog}"
    if not isinstance(block, dict):
        raise ParamsError(f"{where}: expected a mapping with {list(BLOCK_REQUIRED)}, not {block!r}")
    if unknown := sorted(set(block) - {*BLOCK_REQUIRED, *BLOCK_OVERRIDES}):
        raise ParamsError(f"{where}: unknown key(s) {unknown}; expected {[*BLOCK_REQUIRED, *BLOCK_OVERRIDES]}")
    if missing := [key for key in BLOCK_REQUIRED if block.get(key) is None]:
        raise ParamsError(f"{where}: missing key(s) {missing}")
    if not isinstance(block["source"], str) or not block["source"]:
        raise ParamsError(f"{where}.source: expected a path or URL, not {block['source']!r}")
    for name in ("ingest", *BLOCK_OVERRIDES):
        if name in block and not isinstance(block[name], dict):
            raise ParamsError(f"{where}.{name}: expected a mapping, not {block[name]!r}")
    return block


def with_overrides(section: Mapping[str, Any], block: Mapping[str, Any], name: str, catalog: str) -> dict[str, Any]:
    """`section` (params `name`) with the catalog's overrides `catalogs.<catalog>.<name>` laid over it; an
    override of a key the section does not have is an error (a typo would otherwise be ignored)."""
    overrides = block.get(name) or {}
    if unknown := sorted(set(overrides) - set(section)):
        raise ParamsError(f"catalogs.{catalog}.{name}: unknown key(s) {unknown}; the {name} section has "
                          f"{sorted(section)}")
    return {**section, **overrides}
