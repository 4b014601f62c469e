"""Catalog plug-ins: one module per source format, each mapping it onto the canonical tables.

A plug-in is a module with `plan(raw: Path, catalog: str, options: dict) -> Plan`, listed in
PLUGINS: which files to read, their fields, and the row-local mapping onto the canonical columns
(pipelines/catalogs/source.py). `params.yaml` `ingest.catalogs.<catalog>` names the plug-in and its
options (README: "Adding a catalog"); either ingest engine then reads the plan and filters the rows
the same way for every catalog.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.catalogs.readers import check_not_empty, file_splits, local_open
from pipelines.catalogs.source import ORDER, Items, Plan, Source, Stream, Table, canonical, check_items
from pipelines.catalogs.streams import read_mapped
from pipelines.common.schemas import INTERACTIONS

PLUGINS = {
    "amazon2023": "pipelines.catalogs.amazon2023",  # Amazon Reviews 2023 JSONL (reviews + meta)
    "generic": "pipelines.catalogs.generic",  # any Parquet / CSV / JSONL, columns mapped in params
    "movielens_wikidata": "pipelines.catalogs.movielens_wikidata",  # bundled movies
    "tmdb": "pipelines.catalogs.tmdb",  # TMDB 5000 + MovieLens links and ratings
    "womens_clothing": "pipelines.catalogs.womens_clothing",  # bundled fashion
}


def plan(catalog: str, raw: Path, options: Mapping[str, Any]) -> Plan:
    """The plan of plug-in `options["plugin"]` for the files under `raw`, with the rest of `options`."""
    options = dict(options)
    plugin = options.pop("plugin", None)
    if plugin not in PLUGINS:
        raise ValueError(f"ingest.catalogs.{catalog}.plugin: {plugin!r} is not one of {sorted(PLUGINS)}")
    return importlib.import_module(PLUGINS[plugin]).plan(Path(raw), catalog, options)


def read_whole(stream: Stream, raw: Path, table: Table) -> tuple[pl.DataFrame, pa.Table, int]:
    """A stream read in one process: (mapped rows, quarantine, rows read)."""
    path = raw / stream.path
    if not path.is_file():
        raise FileNotFoundError(f"{stream.path}: no such file {path}")
    parts = [part for split in file_splits(str(path), stream.path, path.stat().st_size, local_open)
             for part in read_mapped(stream, split, table, local_open)]
    count = sum(p.count for p in parts)
    check_not_empty(stream.path, count)
    return (pl.concat([p.rows for p in parts], how="diagonal_relaxed"),
            pa.concat_tables([p.rejected for p in parts]).drop_columns([ORDER]), count)


def load(catalog: str, raw: Path, options: Mapping[str, Any]) -> Source:
    """The whole catalog in memory, before the ingest filters: for small catalogs and for inspection."""
    catalog_plan = plan(catalog, raw, options)
    interactions, read_rejected, count = read_whole(catalog_plan.interactions, Path(raw), "interactions")
    if isinstance(catalog_plan.items, Stream):
        frame, items_rejected, items_count = read_whole(catalog_plan.items, Path(raw), "items")
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
