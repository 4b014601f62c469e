"""Catalog plug-ins: one module per source format, each mapping it onto the canonical tables.

A plug-in is a module with `load(raw: Path, catalog: str, options: dict) -> Source`, listed in
PLUGINS. `params.yaml` `ingest.catalogs.<catalog>` names the plug-in and its options (README:
"Adding a catalog"); the ingest stage then filters the Source the same way for every catalog.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.catalogs.source import Source

PLUGINS = {
    "amazon2023": "pipelines.catalogs.amazon2023",  # Amazon Reviews 2023 JSONL (reviews + meta)
    "generic": "pipelines.catalogs.generic",  # any Parquet / CSV / JSONL, columns mapped in params
    "movielens_wikidata": "pipelines.catalogs.movielens_wikidata",  # bundled movies
    "tmdb": "pipelines.catalogs.tmdb",  # TMDB 5000 + MovieLens links and ratings
    "womens_clothing": "pipelines.catalogs.womens_clothing",  # bundled fashion
}


def load(catalog: str, raw: Path, options: Mapping[str, Any]) -> Source:
    """Run the plug-in `options["plugin"]` on the files under `raw` with the rest of `options`."""
    options = dict(options)
    plugin = options.pop("plugin", None)
    if plugin not in PLUGINS:
        raise ValueError(f"ingest.catalogs.{catalog}.plugin: {plugin!r} is not one of {sorted(PLUGINS)}")
    return importlib.import_module(PLUGINS[plugin]).load(Path(raw), catalog, options)
