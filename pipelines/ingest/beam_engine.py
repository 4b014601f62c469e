"""Apache Beam ingest engine: the same plan and rules as the Polars engine, as one Beam pipeline.

Source files are planned into splits on a worker and read split by split (pipelines/catalogs/splits.py)
through Beam's `FileSystems`, so `--source` may be any Beam filesystem path (local, gs://, s3://); a
compressed file or a zip member is read whole through fsspec (pipelines/catalogs/files.py).
JSONL line numbers come from each split's newline count (a side input). Reading, typing, mapping
and quarantine run in DoFns with tagged outputs; the unique-item rule and the dedup / user rules
are GroupByKeys, the item rule a CoGroupByKey with the kept item ids (transforms in
beam_transforms.py). Every output is sharded Parquet (WriteToParquet) under a staging folder
(`--temp_location` when given, else beside the stage's output), rows carrying their source
position; `run` then streams the shards into the stage's files in source order.

Options: anything `semrec ingest` does not know goes to PipelineOptions; an option Beam does not
know either is an error. Without `--runner` (or with `--runner FnApiRunner`) the pipeline runs on
FnApiRunner (DirectRunner would download Prism); `--direct_num_workers 2 --direct_running_mode
multi_processing` runs it in 2 worker processes.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

import apache_beam as beam
import polars as pl
import pyarrow as pa
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from pipelines.catalogs import files, splits
from pipelines.catalogs.readers import check_not_empty
from pipelines.catalogs.source import Items, Plan, Stream, quarantine_frame, titled
from pipelines.catalogs.streams import read_mapped
from pipelines.common.schemas import INTERACTIONS, ITEMS, QUARANTINE
from pipelines.ingest.beam_transforms import FilterInteractions
from pipelines.ingest.filters import ORDER, STEPS, Rules
from pipelines.ingest.filters import REJECTED as REJECTED_SCHEMA
from pipelines.ingest.output import PHASES, Output, interaction_rows, item_rows, whole_items

QUARANTINED, COUNT = "quarantined", "count"
ORDERED_QUARANTINE = QUARANTINE.append(pa.field(ORDER, pa.int64())).append(pa.field("_phase", pa.int32()))
ITEM_ROWS = ITEMS.append(pa.field(ORDER, pa.int64()))


def beam_options(args: list[str]) -> tuple[PipelineOptions, Any]:
    """PipelineOptions from `args`, refusing options Beam does not know; and the runner to use."""
    options = PipelineOptions(args)
    unknown = set(options.get_all_options(retain_unknown_options=True)) - set(options.get_all_options())
    if unknown:
        raise ValueError(f"semrec ingest --engine beam: Beam does not know option(s) "
                         f"{', '.join('--' + u for u in sorted(unknown))}")
    runner = options.view_as(StandardOptions).runner
    return options, FnApiRunner() if runner in (None, "FnApiRunner") else None


def open_file(path: str) -> Any:
    """Through Beam's FileSystems; a compressed file or a zip member through fsspec (files.py)."""
    if not files.splittable(path):
        return files.open_source(path)
    return FileSystems.open(path, compression_type="uncompressed")


def stream_splits(location: str, stream: Stream, split_bytes: int) -> list[splits.Split]:
    size = files.size(location) if not files.splittable(location) else \
        FileSystems.match([location])[0].metadata_list[0].size_in_bytes
    return splits.plan(location, stream.path, size, open_file, split_bytes, stream.format, stream.csv)


class ReadSplit(beam.DoFn):
    """One split's chunks, mapped: rows (dicts) on the main output, unreadable rows tagged QUARANTINED,
    the rows read tagged COUNT. Items also get the title check."""

    def __init__(self, stream: Stream, table: str, catalog: str) -> None:
        self.stream, self.table, self.catalog = stream, table, catalog

    def process(self, split: splits.Split, counts: list[tuple[int, int]]) -> Iterator[Any]:
        if split.format == "jsonl":
            split = replace(split, first_row=1 + sum(n for index, n in counts if index < split.index))
        for chunk in read_mapped(self.stream, split, self.table, open_file):  # type: ignore[arg-type]
            yield pvalue.TaggedOutput(COUNT, chunk.count)
            yield from quarantined(chunk.rejected, f"{self.table}_read")
            if self.table == "items":
                good, untitled = titled(chunk.rows, self.catalog)
                yield from quarantined(untitled, "items_title")
                yield from item_rows(good).to_dicts()
            else:
                yield from interaction_rows(chunk.rows).to_dicts()


def quarantined(table: pa.Table, phase: str) -> Iterator[pvalue.TaggedOutput]:
    for row in table.to_pylist():
        yield pvalue.TaggedOutput(QUARANTINED, {**row, "_phase": PHASES.index(phase)})


def first_of_each_id(group: tuple[str, Iterable[dict[str, Any]]]) -> Iterator[Any]:
    """The unique rule for one item id: the first titled row is the item, later ones are quarantined."""
    first, *later = sorted(group[1], key=lambda r: r[ORDER])
    yield first
    for row in later:
        yield pvalue.TaggedOutput(QUARANTINED, {
            "source": "items/unique", "row_ref": row["row_ref"], "field": "item_id",
            "reason": f"duplicate_item_id: first at {first['row_ref']}", "payload": row["_payload"],
            ORDER: row[ORDER], "_phase": PHASES.index("items_unique")})


def built_items(build: Any, catalog: str) -> Iterator[Any]:
    """Items a plug-in builds whole (run on a worker): kept rows, tagged quarantine, count and stats."""
    items: Items = build()
    kept, parts = whole_items(items, catalog)
    yield pvalue.TaggedOutput(COUNT, items.raw)
    yield pvalue.TaggedOutput("stats", json.dumps(items.stats))
    for phase, part in parts:
        yield from quarantined(part, phase)
    yield from item_rows(kept).to_dicts()


def read_stream(pipeline: beam.Pipeline, stream: Stream, raw: str, table: str, catalog: str,
                split_bytes: int) -> Any:
    label = f"{table}: "
    location = stream.location or FileSystems.join(raw, stream.path)
    if not (files.exists(location) if not files.splittable(location) else FileSystems.exists(location)):
        raise FileNotFoundError(f"{stream.path}: no such file {location}")
    planned = (pipeline
               | label + "file" >> beam.Create([location])
               | label + "splits" >> beam.FlatMap(stream_splits, stream, split_bytes)
               | label + "spread" >> beam.Reshuffle())
    counts = planned | label + "newlines" >> beam.Map(
        lambda s: (s.index, splits.newlines(s, open_file) if s.format == "jsonl" else 0))
    return planned | label + "read" >> beam.ParDo(ReadSplit(stream, table, catalog), pvalue.AsList(counts)) \
        .with_outputs(QUARANTINED, COUNT, main="rows")


def write(rows: Any, prefix: str, schema: pa.Schema, label: str) -> None:
    rows | label >> beam.io.WriteToParquet(prefix, schema, file_name_suffix=".parquet")


def build(pipeline: beam.Pipeline, plan: Plan, raw: str, catalog: str, rules: Rules, staging: str,
          split_bytes: int) -> None:
    if isinstance(plan.items, Stream):
        read = read_stream(pipeline, plan.items, raw, "items", catalog, split_bytes)
        unique = (read.rows | "items: key id" >> beam.Map(lambda r: (r["item_id"], r))
                  | "items: group id" >> beam.GroupByKey()
                  | "items: unique" >> beam.FlatMap(first_of_each_id).with_outputs(QUARANTINED, main="kept"))
        items, item_quarantine, item_count = unique.kept, (read[QUARANTINED], unique[QUARANTINED]), read[COUNT]
        stats = pipeline | "items: no stats" >> beam.Create(["{}"])
    else:
        whole = (pipeline | "items: once" >> beam.Create([None])
                 | "items: build" >> beam.FlatMap(lambda _: built_items(plan.items, catalog))
                 .with_outputs(QUARANTINED, COUNT, "stats", main="kept"))
        items, item_quarantine, item_count, stats = whole.kept, (whole[QUARANTINED],), whole[COUNT], whole.stats
    interactions = read_stream(pipeline, plan.interactions, raw, "interactions", catalog, split_bytes)
    item_ids = items | "items: ids" >> beam.Map(lambda r: r["item_id"])
    kept, rejected = interactions.rows | FilterInteractions(rules, item_ids)

    write(items, f"{staging}/items/part", ITEM_ROWS, "write items")
    write(kept, f"{staging}/interactions/part", INTERACTIONS.append(pa.field(ORDER, pa.int64())),
          "write interactions")
    write(rejected, f"{staging}/rejected/part", REJECTED_SCHEMA.append(pa.field(ORDER, pa.int64())),
          "write rejected")
    write((interactions[QUARANTINED], *item_quarantine) | "all quarantined" >> beam.Flatten(),
          f"{staging}/quarantine/part", ORDERED_QUARANTINE, "write quarantine")
    raw_counts = [count | f"{table}: rows read" >> beam.CombineGlobally(sum)
                  | f"{table}: tag" >> beam.Map(lambda n, t=table: json.dumps({t: n}))
                  for table, count in (("items", item_count), ("interactions", interactions[COUNT]))]
    ((*raw_counts, stats | "stats: tag" >> beam.Map(lambda s: json.dumps({"stats": json.loads(s)})))
     | "all counts" >> beam.Flatten()
     | "write counts" >> beam.io.WriteToText(f"{staging}/counts/part", file_name_suffix=".jsonl"))


def shards(staging: str, name: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([f"{staging}/{name}/part*"])[0].metadata_list)


def sorted_shards(staging: str, name: str, by: list[str]) -> pl.DataFrame:
    """A sharded output in source order (one sort of the shards: the Beam engine's one whole-table step)."""
    paths = shards(staging, name)
    frames = [pl.read_parquet(open_file(p)) for p in paths]
    return pl.concat(frames).sort(by) if frames else pl.DataFrame()


def collect(staging: str, out: Output) -> dict[str, Any]:
    """The pipeline's shards into the stage's files, in the order the Polars engine writes them."""
    counts: dict[str, Any] = {}
    for path in shards(staging, "counts"):
        with open_file(path) as f:
            for line in f.read().decode().splitlines():
                counts.update(json.loads(line))
    for table in ("items", "interactions"):
        check_not_empty(table, counts.get(table, 0))
    quarantine = sorted_shards(staging, "quarantine", ["_phase", ORDER])
    for phase in range(len(PHASES) - 1):
        if not quarantine.is_empty():
            out.quarantine_part(PHASES[phase], quarantine.filter(pl.col("_phase") == phase))
    items = sorted_shards(staging, "items", [ORDER])
    if not items.is_empty():
        out.items(items)
    interactions = sorted_shards(staging, "interactions", [ORDER])
    if not interactions.is_empty():
        out.interactions(interactions)
    rejected = sorted_shards(staging, "rejected", [ORDER])
    if not rejected.is_empty():
        out.quarantine_part("interactions_filters", quarantine_frame(
            rejected, "interactions", step=pl.col("_step"), reason=pl.col("_reason"),
            field=pl.col("_step").replace_strict(STEPS)))
    return {"raw": {"items": counts["items"], "interactions": counts["interactions"]}, "stats": counts["stats"]}


def run(plan: Plan, raw: str, catalog: str, rules: Rules, out: Output, beam_args: list[str],
        split_bytes: int) -> dict[str, Any]:
    options, runner = beam_options(beam_args)
    temp = options.get_all_options().get("temp_location")
    with tempfile.TemporaryDirectory(prefix="beam-", dir=None if temp else out.folder) as local:
        staging = FileSystems.join(temp, f"semrec-ingest-{uuid.uuid4().hex}") if temp else local
        with beam.Pipeline(runner=runner, options=options) as pipeline:
            build(pipeline, plan, raw, catalog, rules, staging, split_bytes)
        return collect(staging, out)

