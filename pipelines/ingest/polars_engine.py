"""Polars ingest engine (the default): a plan's files streamed split by split, in bounded memory.

Items first (the item rule needs their ids), then interactions, each in two passes:
1. A process pool reads each split (pipelines/catalogs/splits.py) in chunks: typed, mapped, unreadable
   rows quarantined. Items get the title check; interactions the row rules (rating, tokens, item: a
   binary search in the sorted kept item ids; then language, CLD2 on the rows every cheaper rule
   kept). Each chunk is spilled to Parquet with its verdicts, and only key columns go on: (item_id,
   position) of titled items; (user, item, timestamp, position) of live interactions with a user,
   written to one of PARTITIONS files by a hash of the user.
2. The rules over many rows run on key columns alone: unique items over all item keys; the
   duplicate and user_positives rules one user partition at a time. The spilled chunks are then
   written out in source order with those verdicts.
Peak memory: a split's chunks per worker, one key partition, and the kept item ids (sorted, in each worker).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from tqdm import tqdm

from pipelines.catalogs import splits
from pipelines.catalogs.readers import check_not_empty, local_open
from pipelines.catalogs.source import Items, Plan, Stream, duplicates, quarantine_frame, titled
from pipelines.catalogs.streams import read_mapped
from pipelines.ingest import langid
from pipelines.ingest.filters import ORDER, REASONS, STEPS, TOKEN_PATTERN, WRONG_LANGUAGE, Rules, languages
from pipelines.ingest.output import Output, interaction_rows, item_rows
from pipelines.ingest.output import whole_items as checked_whole_items

ALIVE = pl.col("_step").is_null()
LATEST = 2**63 - 1
PARTITIONS = 64  # user partitions of the key columns: 10M reviews make ~10 MB partitions
SET_STEPS = ("duplicate", "user_positives")


def row_rules(rows: pl.DataFrame, known_items: pl.Series, rules: Rules) -> pl.DataFrame:
    """The row rules in STEPS order over a chunk of INTERACTIONS rows (+ ORDER): `_step` and `_reason`
    name the first rule a row fails. Language runs last, on the rows every cheaper rule kept."""
    tokens = sum(pl.col(c).str.count_matches(TOKEN_PATTERN).fill_null(0) for c in ("summary", "text"))
    at = known_items.search_sorted(rows["item_id"]).clip(0, max(len(known_items) - 1, 0))
    known = known_items.gather(at) == rows["item_id"] if len(known_items) else pl.repeat(False, rows.height, eager=True)
    failed = [("rating", pl.col("rating") < rules.min_rating),
              ("tokens", (pl.col("_tokens") > 0) & (pl.col("_tokens") < rules.min_tokens)),
              ("item", ~pl.col("_known"))]
    frame = rows.with_columns(_tokens=tokens, _known=known).with_columns(
        _step=pl.coalesce(pl.when(hit).then(pl.lit(step)) for step, hit in failed))
    asked = frame.select(ALIVE & (pl.col("_tokens") > 0)).to_series()
    # Cut to what CLD2 reads before the texts become Python strings.
    texts = frame.filter(asked).select(pl.concat_str("summary", "text", separator=" ", ignore_nulls=True)
                                       .str.slice(0, langid.PREFIX)).to_series()
    detected = pl.Series("_lang", [None] * frame.height, pl.String).scatter(
        asked.arg_true(), pl.Series(languages(texts.to_list()), dtype=pl.String))
    wrong = ALIVE & (pl.col("_lang") != rules.language)
    return frame.with_columns(detected).with_columns(
        _step=pl.when(wrong).then(pl.lit("language")).otherwise("_step"),
        _reason=pl.when(wrong).then(pl.lit(WRONG_LANGUAGE) + pl.col("_lang")).otherwise(
            pl.col("_step").replace_strict(REASONS, default=None)),
    ).drop("_tokens", "_known", "_lang")


def set_rules(keys: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """(ORDER, _step) of the rows the duplicate and user_positives rules reject, from key columns
    (user_id, item_id, timestamp, ORDER) of live rows with a user."""
    earliest = keys.sort(pl.col("timestamp").fill_null(LATEST), ORDER).unique(["user_id", "item_id"], keep="first")
    duplicate = keys.join(earliest.select(ORDER), on=ORDER, how="anti").select(ORDER, _step=pl.lit("duplicate"))
    few = earliest.filter(pl.len().over("user_id") < rules.min_user_positives)
    return pl.concat([duplicate, few.select(ORDER, _step=pl.lit("user_positives"))])


@dataclass(frozen=True)
class Job:
    """What a worker needs to run one split (everything picklable)."""

    stream: Stream
    table: str
    spill: Path  # folder for the split's files
    catalog: str = ""
    rules: Rules | None = None
    known_items: Path | None = None


@cache
def sorted_ids(path: Path) -> pl.Series:
    return pl.read_parquet(path)["item_id"]


def user_partition(keys: pl.DataFrame) -> pl.Series:
    return (keys["user_id"].hash(seed=0) % PARTITIONS).cast(pl.Int32)


def run_split(job: Job, split: splits.Split) -> tuple[int, pa.Table | None]:
    """Pass 1 of one split: spill files under job.spill; returns (rows read, item keys for items)."""
    count, keys, spills, rejected, untitled = 0, [], [], [], []
    for chunk in read_mapped(job.stream, split, job.table, local_open):
        count += chunk.count
        rejected.append(chunk.rejected)
        if job.table == "items":
            good, bad = titled(chunk.rows, job.catalog)
            untitled.append(bad)
            spills.append(item_rows(good).to_arrow())
            keys.append(good.select("item_id", ORDER).to_arrow())
        else:
            judged = row_rules(interaction_rows(chunk.rows), sorted_ids(job.known_items), job.rules)  # type: ignore[arg-type]
            spills.append(judged.to_arrow())
            keys.append(judged.filter(ALIVE & pl.col("user_id").is_not_null()).select(
                "user_id", "item_id", "timestamp", ORDER).to_arrow())
    name = f"{split.index:06d}.arrow"
    if job.table == "interactions":
        write_partitions(keys, job.spill / f"keys-{name}")
        keys = []
    write_tables(spills, job.spill / f"rows-{name}")
    write_tables(rejected, job.spill / f"read-{name}")
    if job.table == "items":
        write_tables(untitled, job.spill / f"title-{name}")
    return count, pa.concat_tables(keys) if keys else None


def write_partitions(keys: list[pa.Table], path: Path) -> None:
    """A split's live keys as one Arrow file of PARTITIONS record batches, batch p = user partition p."""
    frame = pl.concat([pl.from_arrow(k) for k in keys]) if keys else pl.DataFrame(
        schema={"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Int64, ORDER: pl.Int64})
    parts = frame.with_columns(_part=user_partition(frame)).partition_by("_part", as_dict=True, include_key=False)
    schema = frame.to_arrow().schema
    with pa.ipc.new_file(path, schema) as writer:
        for part in range(PARTITIONS):
            rows = parts.get((part,))
            writer.write_batch(pa.RecordBatch.from_pylist([], schema=schema) if rows is None else
                               rows.to_arrow().cast(schema).combine_chunks().to_batches()[0])


def write_tables(tables: list[pa.Table], path: Path) -> None:
    """One Arrow IPC file of `tables` (spill: uncompressed, written and read back at memory speed),
    or none when they are all empty."""
    tables = [t for t in tables if t.num_rows]
    if tables:
        with pa.ipc.new_file(path, tables[0].schema) as writer:
            for table in tables:
                writer.write_table(table.cast(tables[0].schema))


def in_order(folder: Path, prefix: str) -> list[Path]:
    return sorted(folder.glob(f"{prefix}-*.arrow"))


def read_spill(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def batches(paths: Iterable[Path]) -> Iterator[pl.DataFrame]:
    """The spilled chunks in order, one at a time."""
    for path in paths:
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_file(source)
            for batch in range(reader.num_record_batches):
                yield pl.from_arrow(pa.Table.from_batches([reader.get_batch(batch)]))


@contextmanager
def pool(workers: int) -> Iterator[Callable[..., Iterable[Any]]]:
    """`map` over a process pool of `workers` (spawned: Polars must not fork), or in this process for 1."""
    if workers <= 1:
        yield map
        return
    executor: Executor = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    with executor:
        yield executor.map


def stream_splits(stream: Stream, raw: str, split_bytes: int, run: Callable[..., Iterable[Any]]) -> list[splits.Split]:
    path = os.path.join(raw, stream.path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{stream.path}: no such file {path}")
    planned = splits.plan(path, stream.path, os.path.getsize(path), local_open, split_bytes)
    if len(planned) > 1 and planned[0].format == "jsonl":
        planned = splits.numbered(planned, list(run(partial(splits.newlines, opener=local_open), planned)))
    return planned


def run_stream(job: Job, raw: str, split_bytes: int, run: Callable[..., Iterable[Any]]) -> tuple[int, list[pa.Table]]:
    planned = stream_splits(job.stream, raw, split_bytes, run)
    # One split needs no pool: the pool's workers start on its first task, so they never start.
    results = list(tqdm((run if len(planned) > 1 else map)(partial(run_split, job), planned), total=len(planned),
                        desc=f"ingest {job.stream.path}", unit="split", disable=None))
    count = sum(n for n, _ in results)
    check_not_empty(job.stream.path, count)
    return count, [keys for _, keys in results if keys is not None]


def stream_items(plan: Plan, raw: str, catalog: str, spill: Path, out: Output, split_bytes: int,
                 run: Callable[..., Iterable[Any]]) -> tuple[int, pl.Series]:
    """Items from a stream: pass 1 in the pool, then the unique rule on (item_id, position) keys."""
    count, keys = run_stream(Job(plan.items, "items", spill, catalog), raw, split_bytes, run)  # type: ignore[arg-type]
    key_frame = pl.concat([pl.from_arrow(k) for k in keys]) if keys else pl.DataFrame(
        schema={"item_id": pl.String, ORDER: pl.Int64})
    first = pl.col("item_id").is_first_distinct()
    later = key_frame.filter(~first)
    # A stream's row_ref is "<file>:<ORDER>": the first row of a repeated id is named from its position.
    later = later.join(key_frame.filter(first & pl.col("item_id").is_in(later["item_id"].implode())),
                       on="item_id", suffix="_of_first").select(
        ORDER, _first=pl.format("{}:{}", pl.lit(plan.items.path), f"{ORDER}_of_first"))  # type: ignore[union-attr]
    del key_frame
    for path in in_order(spill, "read"):
        out.quarantine_part("items_read", read_spill(path))
    for path in in_order(spill, "title"):
        out.quarantine_part("items_title", read_spill(path))
    for rows in batches(in_order(spill, "rows")):
        marked = rows.join(later, on=ORDER, how="left", maintain_order="left")
        out.items(marked.filter(pl.col("_first").is_null()))
        out.quarantine_part("items_unique", duplicates(marked.filter(pl.col("_first").is_not_null())))
    return count, pl.Series("item_id", out.item_ids()).sort()


def whole_items(items: Items, catalog: str, out: Output) -> pl.Series:
    kept, parts = checked_whole_items(items, catalog)
    for phase, part in parts:
        out.quarantine_part(phase, part)
    out.items(kept)
    return kept["item_id"].sort()


def run(plan: Plan, raw: str, catalog: str, rules: Rules, out: Output, workers: int,
        split_bytes: int) -> dict[str, Any]:
    """Write items, interactions and quarantine parts through `out`; returns raw counts and source stats."""
    spill = out.folder / "spill"
    with pool(workers) as run_map:
        for table in ("items", "interactions"):
            (spill / table).mkdir(parents=True)
        if isinstance(plan.items, Stream):
            items_raw, known = stream_items(plan, raw, catalog, spill / "items", out, split_bytes, run_map)
            stats: dict[str, int] = {}
        else:
            whole = plan.items()
            items_raw, known, stats = whole.raw, whole_items(whole, catalog, out), whole.stats
        known.to_frame().write_parquet(spill / "known_items.parquet")
        del known  # the workers read it from disk
        # The item keys and ids (O(items)) are freed, but mimalloc keeps the pages, and this process only
        # waits during the interactions pass: hand them back (10M reviews: 256 -> ~60 MB held here).
        pa.default_memory_pool().release_unused()
        job = Job(plan.interactions, "interactions", spill / "interactions", catalog, rules,
                  spill / "known_items.parquet")
        interactions_raw, _ = run_stream(job, raw, split_bytes, run_map)
    rejected = set_rejections(spill / "interactions", rules)
    for path in in_order(spill / "interactions", "read"):
        out.quarantine_part("interactions_read", read_spill(path))
    rejected_at = rejected[ORDER]
    for rows in batches(in_order(spill / "interactions", "rows")):
        if rows.is_empty():
            continue
        # A chunk holds ascending positions: join only the verdicts in its range (at 10M reviews, joining
        # all of them to every chunk cost ~15 ms a chunk, a tenth of that sliced).
        start = rejected_at.search_sorted(rows[ORDER][0], "left")
        end = rejected_at.search_sorted(rows[ORDER][-1], "right")
        verdict = rows.join(rejected.slice(start, end - start), on=ORDER, how="left", maintain_order="left",
                            suffix="_set").with_columns(_step=pl.coalesce("_step", "_step_set"))
        verdict = verdict.with_columns(_reason=pl.coalesce("_reason", pl.col("_step").replace_strict(
            REASONS, default=None)))
        out.interactions(verdict.filter(ALIVE))
        out.quarantine_part("interactions_filters", quarantine_frame(
            verdict.filter(~ALIVE), "interactions", step=pl.col("_step"), reason=pl.col("_reason"),
            field=pl.col("_step").replace_strict(STEPS)))
    return {"raw": {"items": items_raw, "interactions": interactions_raw}, "stats": stats}


def set_rejections(spill: Path, rules: Rules) -> pl.DataFrame:
    """The duplicate and user_positives verdicts, one user partition at a time."""
    verdicts = [pl.DataFrame(schema={ORDER: pl.Int64, "_step": pl.String})]
    sources = [pa.memory_map(str(path)) for path in in_order(spill, "keys")]
    readers = [pa.ipc.open_file(source) for source in sources]
    for part in range(PARTITIONS):
        batches = [reader.get_batch(part) for reader in readers]
        if any(b.num_rows for b in batches):
            verdicts.append(set_rules(pl.from_arrow(pa.Table.from_batches(batches)), rules))
    for source in sources:
        source.close()
    return pl.concat(verdicts).sort(ORDER)

