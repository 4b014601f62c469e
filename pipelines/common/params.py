"""Read params.yaml: one stage's section (each stage reads only its own), and a catalog's block.

A catalog's block (`catalogs.<key>`, README "Adding a catalog") names its `source` (a file or folder:
repo-relative, absolute or an fsspec URL; the ingest stage's dependency, never a stage output), its
`ingest` plug-in and options, and optional overrides of the `pairs` and `train` sections for this
catalog. A mistake is a ParamsError naming the key: one line, exit 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from serving.errors import UsageError

DEFAULT_PARAMS = Path("params.yaml")
BLOCK_REQUIRED = ("source", "ingest")
BLOCK_OVERRIDES = ("pairs", "train")  # sections a catalog block may override


class ParamsError(UsageError):
    """A params.yaml value that cannot be used; the message starts with its key."""


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
