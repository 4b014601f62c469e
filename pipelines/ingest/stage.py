"""ingest stage: read a catalog through its plug-in, apply the filter rules, write typed Parquet.

    semrec ingest --catalog movies --raw data/raw --out data/movies/ingest [--engine polars|beam]

Writes items.parquet, interactions.parquet, quarantine.parquet (every rejected row, with the step
that rejected it and why) and counts.json (per table: raw rows, rows left after each step in
order, quarantine counts per reason code). raw = kept + quarantined is checked before anything is
written. Items that no kept interaction references stay in items.parquet: they are still catalog
items to recommend. The two engines give identical output (tests/test_ingest_parity.py).
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl
import pyarrow as pa
from tqdm import tqdm

from pipelines import catalogs
from pipelines.catalogs.source import Table, quarantine_frame
from pipelines.common.atomic import write_json, write_parquet
from pipelines.common.params import load_section
from pipelines.ingest.filters import STEPS, Rules

Engine = Literal["polars", "beam"]
ENGINES: dict[str, str] = {"polars": "pipelines.ingest.polars_engine", "beam": "pipelines.ingest.beam_engine"}
# The steps of each table in order: the plug-in's (read, metadata, title, unique), then the filters.
TABLE_STEPS: dict[Table, list[str]] = {
    "items": ["read", "metadata", "title", "unique"],
    "interactions": ["read", *STEPS],
}


@dataclass(frozen=True)
class Ingested:
    items: pa.Table
    interactions: pa.Table
    quarantine: pa.Table
    counts: dict[str, Any]


def check_engine(engine: str | None) -> Engine:
    if engine not in get_args(Engine):
        raise ValueError(f"ingest engine: {engine!r} is not one of {list(get_args(Engine))}")
    return engine  # type: ignore[return-value]


def table_counts(table: Table, raw: int, kept: int, quarantine: pa.Table) -> dict[str, Any]:
    """Rows left after each step and quarantined per reason code; fails if rows went missing."""
    mine = pl.from_arrow(quarantine.select(["source", "reason"])).filter(
        pl.col("source").str.starts_with(f"{table}/")).select(
        step=pl.col("source").str.split_exact("/", 1).struct.field("field_1"),
        code=pl.col("reason").str.split_exact(":", 1).struct.field("field_0"))
    per_step = dict(mine.group_by("step").len().iter_rows())
    unknown = set(per_step) - set(TABLE_STEPS[table])
    if unknown:
        raise ValueError(f"{table}: quarantine rows from unknown step(s) {sorted(unknown)}")
    left, after = raw, {}
    for number, step in enumerate(TABLE_STEPS[table], start=1):
        left -= per_step.get(step, 0)
        after[f"{number}_{step}"] = left  # numbered: JSON keys are written sorted
    if left != kept:
        raise RuntimeError(f"{table}: {raw} raw rows but {kept} kept + {mine.height} quarantined")
    return {"raw": raw, "after": after, "kept": kept, "quarantined": mine.height,
            "reasons": dict(sorted(mine.group_by("code").len().iter_rows()))}


def ingest(catalog: str, raw: Path, params: dict[str, Any], engine: Engine | None = None) -> Ingested:
    """Everything but the writes: load the catalog, filter its interactions, count."""
    options = params.get("catalogs", {})
    if catalog not in options:
        raise KeyError(f"ingest.catalogs: no catalog {catalog!r} (have: {sorted(options)})")
    rules = Rules.from_params(params.get("filters") or {})
    engine = check_engine(engine or params.get("engine"))
    with tqdm(total=2, desc=f"ingest {catalog}", unit="step", disable=None) as steps:
        source = catalogs.load(catalog, raw, options[catalog])
        steps.update()
        filtered = importlib.import_module(ENGINES[engine]).run(source.interactions, source.items["item_id"], rules)
        steps.update()
    rejected = quarantine_frame(pl.from_arrow(filtered.rejected), "interactions", step=pl.col("_step"),
                                reason=pl.col("_reason"), field=pl.col("_step").replace_strict(STEPS))
    quarantine = pa.concat_tables([source.quarantine, rejected])
    counts = {
        "items": table_counts("items", source.raw["items"], source.items.num_rows, quarantine),
        "interactions": table_counts("interactions", source.raw["interactions"], filtered.kept.num_rows,
                                     quarantine),
        "source": source.stats,
    }
    return Ingested(source.items, filtered.kept, quarantine, counts)


def summary(catalog: str, counts: dict[str, Any]) -> str:
    lines = []
    for table in TABLE_STEPS:
        c = counts[table]
        steps = " -> ".join(f"{step.split('_', 1)[1]} {n:,}" for step, n in c["after"].items())
        reasons = ", ".join(f"{code} {n:,}" for code, n in c["reasons"].items()) or "none"
        lines.append(f"{catalog} {table}: raw {c['raw']:,} -> {steps}; kept {c['kept']:,}, "
                     f"quarantined {c['quarantined']:,} ({reasons})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True, help="a key of params.yaml ingest.catalogs")
    parser.add_argument("--raw", required=True, type=Path, help="folder of the raw source files")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--engine", choices=get_args(Engine), help="override ingest.engine")
    parser.add_argument("--params", default="params.yaml", type=Path)
    args = parser.parse_args(argv)
    result = ingest(args.catalog, args.raw, load_section("ingest", args.params), args.engine)
    write_parquet(result.items, args.out / "items.parquet")
    write_parquet(result.interactions, args.out / "interactions.parquet")
    write_parquet(result.quarantine, args.out / "quarantine.parquet")
    write_json(result.counts, args.out / "counts.json")
    print(summary(args.catalog, result.counts))
    return 0
