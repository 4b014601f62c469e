"""Catalog plug-ins: one module per source format, each mapping it onto the canonical tables.

A plug-in is a module with `plan(raw: Path, catalog: str, options: dict) -> Plan`, listed in
PLUGINS: which files to read, their fields, and the row-local mapping onto the canonical columns
(pipelines/catalogs/source.py). `raw` is the catalog's source (params `catalogs.<catalog>.source`: a
folder its files are named under, or a file). `params.yaml` `catalogs.<catalog>.ingest` names the
plug-in and its options (README: "Adding a catalog"); either ingest engine then reads the plan and
filters the rows the same way for every catalog.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipelines.catalogs.source import ORDER, Items, Plan, Source, Stream, canonical, check_items, options_key
from pipelines.catalogs.streams import read_whole
from pipelines.common.params import ParamsError
from pipelines.common.schemas import INTERACTIONS

PLUGINS = {
    "amazon2023": "pipelines.catalogs.amazon2023",  # Amazon Reviews 2023 JSONL (reviews + meta)
    "generic": "pipelines.catalogs.generic",  # any Parquet / CSV / TSV / JSONL (compressed, in a zip), mapped in params
    "movielens_wikidata": "pipelines.catalogs.movielens_wikidata",  # bundled movies
    "tmdb": "pipelines.catalogs.tmdb",  # TMDB 5000 + MovieLens links and ratings
    "womens_clothing": "pipelines.catalogs.womens_clothing",  # bundled fashion
}


def plan(catalog: str, raw: str | Path, options: Mapping[str, Any]) -> Plan:
    """The plan of plug-in `options["plugin"]` for the catalog's source `raw`, with the rest of `options`."""
    options = dict(options)
    plugin = options.pop("plugin", None)
    if plugin not in PLUGINS:
        raise ParamsError(f"{options_key(catalog)}.plugin: {plugin!r} is not one of {sorted(PLUGINS)}")
    return importlib.import_module(PLUGINS[plugin]).plan(str(raw), catalog, options)


def load(catalog: str, raw: str | Path, options: Mapping[str, Any]) -> Source:
    """The whole catalog in memory, before the ingest filters: for small catalogs and for inspection."""
    catalog_plan = plan(catalog, raw, options)
    interactions, read_rejected, count = read_whole(catalog_plan.interactions, raw, "interactions")
    if isinstance(catalog_plan.items, Stream):
        frame, items_rejected, items_count = read_whole(catalog_plan.items, raw, "items")
        items = Items(frame.drop(ORDER), items_rejected, items_count)
    else:
        items = catalog_plan.items()
    kept, rejected = check_items(items.frame, catalog)
    return Source(
        items=kept,
        interactions=canonical(interactions, INTERACTIONS, f"{catalog} interactions"),
        quarantine=pa.concat_tables([read_rejected, items.quarantine, rejected]),
        raw={"items": items.raw, "interactions": count},
        stats=items.stats,
    )
