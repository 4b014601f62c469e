"""`semrec catalog check <catalog>`: a catalog's mapping tried on the first rows of its files, in seconds.

    semrec catalog check drugs [--rows 1000] [--params params.yaml]

The fast loop before `dvc repro`: it reads the first `--rows` rows of every file the catalog's
plug-in streams (its items too, where a plug-in builds them from a stream), runs the real ingest
stage on them in a temporary folder, and prints the counts per step, every quarantine reason with
an example row, and the first canonical rows. It writes nothing else. Exit 1 when the ingest stage
would refuse the catalog (ingest.min_kept_fraction, no usable item), 2 on a params mistake.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import catalogs
from pipelines.catalogs import files
from pipelines.catalogs.source import Plan, Stream
from pipelines.catalogs.splits import file_format
from pipelines.common.params import catalog_block, load_section
from pipelines.ingest import stage
from serving.errors import Refused

SHOWN = 3  # canonical rows printed per table


def head_file(stream: Stream, source: str, rows: int, folder: Path) -> Stream:
    """`stream` reading only the first `rows` rows of its file, copied into `folder` (CSV as text columns in
    Parquet, which the readers type exactly as they type CSV cells). Row refs keep the file's name."""
    location = stream.where(source)
    if not files.exists(location):
        raise FileNotFoundError(f"{stream.path}: no such file {location}")
    fmt = stream.format or file_format(stream.path)
    kept = "jsonl" if fmt in ("jsonl", "json") else "parquet"
    target = folder / f"{len(list(folder.iterdir())):02d}.{kept}"
    with files.open_source(location) as f:
        if fmt == "jsonl":
            target.write_bytes(b"".join(itertools.islice(f, rows)))
        elif fmt == "json":  # the first elements of the array, one per line: row numbers stay the same
            target.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in json.load(f)[:rows]))
        elif fmt == "parquet":
            pq.write_table(pa.Table.from_batches([next(pq.ParquetFile(f).iter_batches(rows))]), target)
        else:
            pl.read_csv(f, n_rows=rows, infer_schema=False, separator=stream.csv.delimiter,
                        quote_char=stream.csv.quote).write_parquet(target)
    return replace(stream, location=str(target), format=kept)


def sampled(value: Any, source: str, rows: int, folder: Path) -> Any:
    """A plan's items or interactions with every Stream cut to its first rows, inside item builders too."""
    if isinstance(value, Stream):
        return head_file(value, source, rows, folder)
    if isinstance(value, partial):
        return partial(value.func, *(sampled(a, source, rows, folder) for a in value.args), **value.keywords)
    return value


def sample_plan(plan: Plan, source: str, rows: int, folder: Path) -> Plan:
    return Plan(interactions=sampled(plan.interactions, source, rows, folder),
                items=sampled(plan.items, source, rows, folder))


def reasons(quarantine: pl.DataFrame) -> list[str]:
    """One line per (step, reason code): its count and the first row it quarantined."""
    coded = quarantine.with_columns(code=pl.col("reason").str.split(":").list.first())
    first = coded.group_by("source", "code", maintain_order=True).agg(
        pl.len().alias("n"), pl.col("row_ref").first(), pl.col("field").first(), pl.col("reason").first())
    return [f"  {r['source']} {r['code']}: {r['n']:,}, e.g. {r['row_ref']}"
            + (f" field {r['field']}" if r["field"] else "") + f": {r['reason']}"
            for r in first.sort("n", descending=True).iter_rows(named=True)]


def check(catalog: str, params_path: Path, rows: int) -> tuple[str, bool]:
    """The report, and whether the ingest stage would accept the catalog."""
    block = catalog_block(catalog, params_path)
    params = load_section("ingest", params_path)
    plan = catalogs.plan(catalog, block["source"], block["ingest"])
    with tempfile.TemporaryDirectory(prefix="semrec-check-") as tmp:
        folder = Path(tmp)
        (folder / "head").mkdir()
        small = sample_plan(plan, block["source"], rows, folder / "head")
        counts = stage.ingest_plan(catalog, small, block["source"], {**params, "workers": 1}, folder / "out",
                                   refuse=False)
        quarantine = pl.read_parquet(folder / "out" / "quarantine.parquet")
        lines = [f"catalog {catalog}: source {block['source']}, plug-in {block['ingest'].get('plugin')}; "
                 f"the first {rows:,} rows of each streamed file", stage.summary(catalog, counts)]
        lines += ["quarantine (step reason: rows, e.g. the first):", *(reasons(quarantine) or ["  none"])]
        for name in ("items", "interactions"):
            table = pl.read_parquet(folder / "out" / f"{name}.parquet").head(SHOWN)
            lines += [f"first {table.height} {name}:",
                      *(f"  {json.dumps(row, ensure_ascii=False, default=str)}" for row in table.to_dicts())]
        try:
            stage.check_health(catalog, counts, pl.scan_parquet(folder / "out" / "quarantine.parquet"),
                               stage.min_kept_fraction(params))
        except Refused as err:
            return "\n".join([*lines, f"verdict: ingest would refuse: {err}"]), False
    return "\n".join([*lines, "verdict: ok"]), True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec catalog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["check"])
    parser.add_argument("catalog", help="a key of params.yaml catalogs")
    parser.add_argument("--rows", type=int, default=1000, help="rows read from the start of each file")
    parser.add_argument("--params", default="params.yaml", type=Path)
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be >= 1")
    report, accepted = check(args.catalog, args.params, args.rows)
    print(report)
    return 0 if accepted else 1
