"""ingest stage: read a catalog through its plug-in, apply the filter rules, write typed Parquet.

    semrec ingest --catalog movies --raw data/raw --out data/movies/ingest [--engine polars|beam]
    semrec ingest ... --engine beam --runner DataflowRunner --project P --region R --temp_location gs://...

Writes items.parquet, interactions.parquet, quarantine.parquet (every rejected row, with the step
that rejected it and why) and counts.json (per table: raw rows, rows left after each step in
order, quarantine counts per reason code). raw = kept + quarantined is checked before anything is
written; the files are written in a temporary folder beside --out and moved in only then. Items
that no kept interaction references stay in items.parquet: they are still catalog items to
recommend. The two engines give identical output (tests/test_ingest_parity.py). With --engine
beam, every option argparse does not know here goes to Beam's PipelineOptions (an option Beam does
not know either is an error).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl

from pipelines import catalogs
from pipelines.common import executor as executors
from pipelines.common.atomic import write_json
from pipelines.common.params import load_section
from pipelines.ingest.filters import STEPS, Rules
from pipelines.ingest.output import FILES, Output

Engine = Literal["polars", "beam"]
ENGINES: dict[str, str] = {"polars": "pipelines.ingest.polars_engine", "beam": "pipelines.ingest.beam_engine"}
Table = Literal["items", "interactions"]
# The steps of each table in order: the plug-in's (read, metadata, title, unique), then the filters.
TABLE_STEPS: dict[Table, list[str]] = {
    "items": ["read", "metadata", "title", "unique"],
    "interactions": ["read", *STEPS],
}
SPLIT_BYTES = 16 << 20  # JSONL bytes per split: bounds a worker's memory (~4x this)


def check_engine(engine: str | None) -> Engine:
    if engine not in get_args(Engine):
        raise ValueError(f"ingest engine: {engine!r} is not one of {list(get_args(Engine))}")
    return engine  # type: ignore[return-value]


def tally(quarantine: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Quarantined rows per (table, step, reason code), from QUARANTINE's source and reason columns."""
    return quarantine.lazy().select(
        table=pl.col("source").str.split_exact("/", 1).struct.field("field_0"),
        step=pl.col("source").str.split_exact("/", 1).struct.field("field_1"),
        code=pl.col("reason").str.split_exact(":", 1).struct.field("field_0"),
    ).group_by("table", "step", "code").len().collect()


def table_counts(table: Table, raw: int, kept: int, tallied: pl.DataFrame) -> dict[str, Any]:
    """Rows left after each step and quarantined per reason code; fails if rows went missing."""
    mine = tallied.filter(pl.col("table") == table)
    per_step = dict(mine.group_by("step").agg(pl.col("len").sum()).iter_rows())
    unknown = set(per_step) - set(TABLE_STEPS[table])
    if unknown:
        raise ValueError(f"{table}: quarantine rows from unknown step(s) {sorted(unknown)}")
    left, after = raw, {}
    for number, step in enumerate(TABLE_STEPS[table], start=1):
        left -= per_step.get(step, 0)
        after[f"{number}_{step}"] = left  # numbered: JSON keys are written sorted
    quarantined = int(mine["len"].sum())
    if left != kept:
        raise RuntimeError(f"{table}: {raw} raw rows but {kept} kept + {quarantined} quarantined")
    return {"raw": raw, "after": after, "kept": kept, "quarantined": quarantined,
            "reasons": dict(sorted(mine.group_by("code").agg(pl.col("len").sum()).iter_rows()))}


def ingest(catalog: str, raw: str | Path, params: dict[str, Any], out: Path, engine: Engine | None = None,
           beam_args: list[str] | None = None,
           executor: executors.ExecutorSettings | None = None) -> dict[str, Any]:
    """Read, filter and write one catalog into `out`; returns the counts (also in counts.json).

    Nothing in `out` changes unless every file was written and the counts add up."""
    options = params.get("catalogs", {})
    if catalog not in options:
        raise KeyError(f"ingest.catalogs: no catalog {catalog!r} (have: {sorted(options)})")
    rules = Rules.from_params(params.get("filters") or {})
    engine = check_engine(engine or params.get("engine"))
    workers = int(params.get("workers") or os.cpu_count() or 1)
    plan = catalogs.plan(catalog, Path(raw), options[catalog])
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".ingest-", suffix=".tmp", dir=out))
    output = Output(folder)
    try:
        module = importlib.import_module(ENGINES[engine])
        if engine == "beam":
            result = module.run(plan, str(raw), catalog, rules, output, beam_args or [], SPLIT_BYTES)
        else:
            result = module.run(plan, str(raw), catalog, rules, output, workers, SPLIT_BYTES,
                                executor or executors.ExecutorSettings())
        rows = output.close()
        tallied = tally(pl.scan_parquet(folder / "quarantine.parquet"))
        counts = {
            "items": table_counts("items", result["raw"]["items"], rows["items.parquet"], tallied),
            "interactions": table_counts("interactions", result["raw"]["interactions"],
                                         rows["interactions.parquet"], tallied),
            "source": result["stats"],
        }
        write_json(counts, folder / "counts.json")
        for name in (*FILES, "counts.json"):
            os.chmod(folder / name, 0o644)
            os.replace(folder / name, out / name)
    finally:
        output.stop()  # no write may still run into the folder being removed
        shutil.rmtree(folder, ignore_errors=True)
    return counts


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
    parser.add_argument("--raw", required=True, help="folder of the raw source files (Beam: any Beam filesystem path)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--engine", choices=get_args(Engine), help="override ingest.engine")
    parser.add_argument("--params", default="params.yaml", type=Path)
    args, beam_args = parser.parse_known_args(argv)
    params = load_section("ingest", args.params)
    if beam_args and (args.engine or params.get("engine")) != "beam":
        parser.error(f"unrecognized arguments: {' '.join(beam_args)} (Beam options need --engine beam)")
    counts = ingest(args.catalog, args.raw, params, args.out, args.engine, beam_args, executors.load(args.params))
    print(summary(args.catalog, counts))
    return 0
