"""The ingest output files: quarantine phases in PHASES order whatever order the first four arrive in,
the last phase streamed straight in, and a write that fails surfacing instead of vanishing in its thread."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from pipelines.common.schemas import QUARANTINE
from pipelines.ingest.output import PHASES, Output


def rows(phase: str, n: int) -> pa.Table:
    return pa.table({"source": [phase] * n, "row_ref": [f"{phase}:{i}" for i in range(n)], "field": [None] * n,
                     "reason": ["r"] * n, "payload": [None] * n}, schema=QUARANTINE)


def test_quarantine_phases_land_in_order_and_the_last_one_streams_in(tmp_path):
    out = Output(tmp_path)
    for phase, n in (("items_read", 2), ("items_unique", 1), ("interactions_read", 3), ("items_title", 0)):
        out.quarantine_part(phase, rows(phase, n))
    for _ in range(2):  # the last phase, in two chunks
        out.quarantine_part("interactions_filters", rows("interactions_filters", 4))
    counts = out.close()
    table = pl.read_parquet(tmp_path / "quarantine.parquet")
    assert counts["quarantine.parquet"] == table.height == 14
    assert table["source"].unique(maintain_order=True).to_list() == [
        "interactions_read", "items_read", "items_unique", "interactions_filters"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interactions.parquet", "items.parquet",
                                                           "quarantine.parquet"]  # no part left behind


def test_an_earlier_phase_after_the_last_one_is_refused(tmp_path):
    out = Output(tmp_path)
    out.quarantine_part(PHASES[-1], rows(PHASES[-1], 1))
    with pytest.raises(ValueError, match="must come last"):
        out.quarantine_part("items_read", rows("items_read", 1))
    out.stop()


def test_a_failed_background_write_raises_at_the_next_call(tmp_path):
    class Full:
        def write_table(self, table: pa.Table) -> None:
            raise OSError("No space left on device")

    out = Output(tmp_path)
    out.quarantine_part("items_read", rows("items_read", 1))
    out.wait()
    out.writers["quarantine-1.parquet"] = Full()
    out.quarantine_part("items_read", rows("items_read", 1))  # fails in the thread ...
    with pytest.raises(OSError, match="No space left"):  # ... and surfaces at the next call, not silently
        out.quarantine_part("items_read", rows("items_read", 1))
    out.stop()
