"""ingest stage: read a catalog through its plug-in, apply the filter rules, write typed Parquet.

    semrec ingest --catalog movies --source data/fetched --out data/movies/ingest [--engine polars|beam]
    semrec ingest ... --engine beam --runner DataflowRunner --project P --region R --temp_location gs://...

The catalog is params `catalogs.<catalog>`: its plug-in and options (`ingest`), and its `source`
(--source overrides it). Writes items.parquet, interactions.parquet, quarantine.parquet (every
rejected row, with the step that rejected it and why) and counts.json (per table: raw rows, rows
left after each step in order, quarantine counts per reason code). raw = kept + quarantined is
checked before anything is written, and so is the catalog's health: the stage refuses (exit 1,
naming the top quarantine reason and an example row) when no item is usable or fewer than
`ingest.min_kept_fraction` of the interactions survive. The files are written in a temporary
folder beside --out and moved in only then, so a refused or failed run leaves the last good
outputs as they were. Items
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl

from pipelines import catalogs
from pipelines.catalogs.source import Plan
from pipelines.common import executor as executors
from pipelines.common.atomic import write_json
from pipelines.common.params import ParamsError, catalog_block, load_section
from pipelines.ingest.filters import STEPS, Rules
from pipelines.ingest.output import FILES, Output
from serving.errors import Refused

Engine = Literal["polars", "beam"]
ENGINES: dict[str, str] = {"polars": "pipelines.ingest.polars_engine", "beam": "pipelines.ingest.beam_engine"}
Table = Literal["items", "interactions"]
# The steps of each table in order: the plug-in's (read, metadata, title, unique), then the filters.
TABLE_STEPS: dict[Table, list[str]] = {
    "items": ["read", "metadata", "title", "unique"],
    "interactions": ["read", *STEPS],
}
SPLIT_BYTES = 16 << 20  # JSONL bytes per split: what bounds a worker's memory


def check_engine(engine: str | None) -> Engine:
    if engine not in get_args(Engine):
        raise ParamsError(f"ingest.engine: {engine!r} is not one of {list(get_args(Engine))}")
    return engine  # type: ignore[return-value]


def min_kept_fraction(params: Mapping[str, Any]) -> float:
    value = params.get("min_kept_fraction", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ParamsError(f"ingest.min_kept_fraction: expected a number from 0 to 1, not {value!r}")
    return float(value)


def example(quarantine: pl.LazyFrame, table: Table, code: str) -> str:
    """The first quarantined row of `table` whose reason is `code`: "<row_ref> field <field>: <reason>"."""
    row = quarantine.filter(pl.col("source").str.starts_with(f"{table}/")
                            & (pl.col("reason").str.split(":").list.first() == code)).head(1).collect().row(0, named=True)
    return f"{row['row_ref']}" + (f" field {row['field']}" if row["field"] else "") + f": {row['reason']}"


def check_health(catalog: str, counts: dict[str, Any], quarantine: pl.LazyFrame, min_fraction: float) -> None:
    """Refuse a catalog with no usable item, or whose interactions mostly landed in quarantine."""
    for table, floor, what in (("items", 1, "no usable item"),
                               ("interactions", min_fraction * counts["interactions"]["raw"],
                                f"fewer than ingest.min_kept_fraction {min_fraction:g} of the interactions")):
        c = counts[table]
        if c["kept"] >= floor and c["kept"] > 0:
            continue
        top = max(c["reasons"], key=c["reasons"].get) if c["reasons"] else None
        why = f"; top quarantine reason {top} ({c['reasons'][top]:,} rows), e.g. {example(quarantine, table, top)}" \
            if top else ""
        raise Refused(f"ingest {catalog}: {what} survived (kept {c['kept']:,} of {c['raw']:,} {table}){why}")


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


def ingest(catalog: str, source: str | Path, options: Mapping[str, Any], params: Mapping[str, Any], out: Path,
           engine: Engine | None = None, beam_args: list[str] | None = None,
           executor: executors.ExecutorSettings | None = None) -> dict[str, Any]:
    """Read, filter and write one catalog into `out`; returns the counts (also in counts.json).

    `options` are the catalog's plug-in options (params `catalogs.<catalog>.ingest`), `params` the
    `ingest` section. Nothing in `out` changes unless every file was written, the counts add up and
    the catalog passed `check_health`."""
    return ingest_plan(catalog, catalogs.plan(catalog, source, options), source, params, out, engine, beam_args,
                       executor)


def ingest_plan(catalog: str, plan: Plan, source: str | Path, params: Mapping[str, Any], out: Path,
                engine: Engine | None = None, beam_args: list[str] | None = None,
                executor: executors.ExecutorSettings | None = None, refuse: bool = True) -> dict[str, Any]:
    """`ingest` of a plan already made; `refuse=False` writes an unhealthy catalog too (`semrec catalog check`)."""
    rules = Rules.from_params(params.get("filters") or {})
    engine = check_engine(engine or params.get("engine"))
    min_fraction = min_kept_fraction(params)
    workers = int(params.get("workers") or os.cpu_count() or 1)
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".ingest-", suffix=".tmp", dir=out))
    output = Output(folder)
    try:
        module = importlib.import_module(ENGINES[engine])
        if engine == "beam":
            result = module.run(plan, str(source), catalog, rules, output, beam_args or [], SPLIT_BYTES)
        else:
            result = module.run(plan, str(source), catalog, rules, output, workers, SPLIT_BYTES,
                                executor or executors.ExecutorSettings())
        rows = output.close()
        quarantine = pl.scan_parquet(folder / "quarantine.parquet")
        tallied = tally(quarantine)
        counts = {
            "items": table_counts("items", result["raw"]["items"], rows["items.parquet"], tallied),
            "interactions": table_counts("interactions", result["raw"]["interactions"],
                                         rows["interactions.parquet"], tallied),
            "source": result["stats"],
        }
        if refuse:
            check_health(catalog, counts, quarantine, min_fraction)
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
    parser.add_argument("--catalog", required=True, help="a key of params.yaml catalogs")
    parser.add_argument("--source", help="the catalog's file or folder (default: params catalogs.<catalog>.source; "
                        "Beam: any Beam filesystem path)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--engine", choices=get_args(Engine), help="override ingest.engine")
    parser.add_argument("--params", default="params.yaml", type=Path)
    args, beam_args = parser.parse_known_args(argv)
    params = load_section("ingest", args.params)
    block = catalog_block(args.catalog, args.params)
    if beam_args and (args.engine or params.get("engine")) != "beam":
        parser.error(f"unrecognized arguments: {' '.join(beam_args)} (Beam options need --engine beam)")
    source = args.source or block["source"]
    try:
        counts = ingest(args.catalog, source, block["ingest"], params, args.out, args.engine, beam_args,
                        executors.load(args.params))
    except FileNotFoundError as err:  # a source file named in params is missing: the params (or the file) to fix
        raise ParamsError(f"catalogs.{args.catalog}: {err} (source: {source})") from err
    print(summary(args.catalog, counts))
    return 0
