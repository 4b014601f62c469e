"""Apache Beam ingest engine: the same rules as the Polars engine, as a Beam pipeline on FnApiRunner.

The pipeline reads the interactions and item ids from Parquet and writes kept and rejected rows as
Parquet shards (a temporary folder); `run` reads them back in source order. FnApiRunner only:
DirectRunner tries to download Prism, and multi-threaded mode loses rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from pipelines.common.schemas import INTERACTIONS, conform
from pipelines.ingest.beam_transforms import FilterInteractions
from pipelines.ingest.filters import ORDER, REJECTED, Filtered, Rules


def with_order(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(ORDER, pa.int64(), nullable=False))


def read_shards(folder: Path, schema: pa.Schema) -> pa.Table:
    """The shards Beam wrote under `folder`, in source order, without ORDER."""
    shards = [pq.read_table(p, schema=schema) for p in sorted(folder.glob("*.parquet"))]
    table = pa.concat_tables(shards) if shards else schema.empty_table()
    table = table.take(pc.sort_indices(table, [(ORDER, "ascending")]))
    return table.drop_columns([ORDER])


def run(interactions: pa.Table, item_ids: pa.Array, rules: Rules) -> Filtered:
    with tempfile.TemporaryDirectory(prefix="semrec-beam-") as tmp:
        tmp = Path(tmp)
        rows = interactions.append_column(ORDER, pa.array(range(interactions.num_rows), pa.int64()))
        pq.write_table(rows, tmp / "interactions.parquet")
        pq.write_table(pa.table({"item_id": item_ids}), tmp / "items.parquet")
        with beam.Pipeline(runner=FnApiRunner()) as pipeline:
            source = pipeline | "read interactions" >> beam.io.ReadFromParquet(str(tmp / "interactions.parquet"))
            known_items = (pipeline
                           | "read items" >> beam.io.ReadFromParquet(str(tmp / "items.parquet"))
                           | "item keys" >> beam.Map(lambda r: (r["item_id"], True)))
            kept, rejected = source | FilterInteractions(rules, beam.pvalue.AsDict(known_items))
            kept | "write kept" >> beam.io.WriteToParquet(
                str(tmp / "kept" / "part"), with_order(INTERACTIONS), file_name_suffix=".parquet")
            rejected | "write rejected" >> beam.io.WriteToParquet(
                str(tmp / "rejected" / "part"), with_order(REJECTED), file_name_suffix=".parquet")
        return Filtered(
            conform(read_shards(tmp / "kept", with_order(INTERACTIONS)), INTERACTIONS, "kept interactions"),
            conform(read_shards(tmp / "rejected", with_order(REJECTED)), REJECTED, "rejected interactions"),
        )
