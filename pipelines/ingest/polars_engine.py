"""Polars ingest engine (the default): a plan's files streamed split by split, in bounded memory.

Items first (the item rule needs their ids), then interactions, each in two passes:
1. The executor's workers (pipelines/common/executor.py: a local process pool or a Dask cluster) read
   each split (pipelines/catalogs/splits.py) in chunks: typed, mapped, unreadable rows quarantined.
   Items get the title check; interactions the row rules (rating, tokens, item: a binary search in the
   kept item ids' sorted hashes; then language, CLD2 on the rows every cheaper rule kept). Each chunk is
   spilled (Arrow IPC) with its verdicts, and only key columns go on: (item_id, position) of titled
   items; (user, item, timestamp, position) of live interactions with a user, written to one of
   PARTITIONS files by a hash of the user.
2. The rules over many rows run on key columns alone: unique items over all item keys; the
   duplicate and user_positives rules one user partition at a time, on the workers. The spilled chunks
   are then written out in source order with those verdicts.
Spilled files live in the run's work folder (pipelines/common/workdir.py), which a cluster's workers share.
Peak memory: a split's chunks per worker, one key partition, and the kept item ids (in each worker).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from pipelines.catalogs import splits
from pipelines.catalogs import files
from pipelines.catalogs.readers import check_not_empty
from pipelines.catalogs.source import Items, Plan, Stream, duplicates, quarantine_frame, titled
from pipelines.catalogs.streams import read_mapped
from pipelines.common.executor import ExecutorSettings, open_executor
from pipelines.common.workdir import WorkDir, run_folder
from pipelines.ingest import langid
from pipelines.ingest.filters import ORDER, REASONS, STEPS, TOKEN_PATTERN, WRONG_LANGUAGE, Rules, languages
from pipelines.ingest.output import Output, interaction_rows, item_rows
from pipelines.ingest.output import whole_items as checked_whole_items

ALIVE = pl.col("_step").is_null()
LATEST = 2**63 - 1
PARTITIONS = 64  # user partitions of the key columns: 10M reviews make ~10 MB partitions
SET_STEPS = ("duplicate", "user_positives")
KNOWN_ITEMS = "known_items.parquet"
# Each worker computes on one thread: the workers keep the cores busy, and the idle threads of Polars'
# pools spinning for work (sched_yield) against the other workers cost more than they add (10M ratings:
# 9 s of system time). Polars reads the variable once, at import: in the worker processes only.
WORKER_ENV = {"POLARS_MAX_THREADS": "1"}


class KnownItems:
    """Membership in the kept item ids, by binary search over their sorted 64-bit hashes.

    Searching a chunk's hashes in ascending order keeps the walk in cache: 5x faster than searching
    the sorted ids themselves (string compares at random places), and nothing like a hash set of
    millions of Python strings is held per worker. A hit is confirmed on the id; if two kept ids
    share a hash, the ids are searched instead. Built from `by_hash(ids)`, which the stage writes
    once for all workers."""

    def __init__(self, by_hash: pl.DataFrame) -> None:
        self.hashes = by_hash["_hash"].to_numpy()
        self.ids = by_hash["item_id"]
        collide = bool((self.hashes[1:] == self.hashes[:-1]).any())
        self.sorted_ids = self.ids.sort() if collide else None

    @staticmethod
    def by_hash(ids: pa.Array, slice_rows: int = 1 << 20) -> pa.Table:
        """(item_id, _hash) in ascending hash order; hashed a slice at a time, so Polars' allocator,
        which keeps what it frees, holds one slice's memory, not the whole column's."""
        hashes = np.concatenate([np.zeros(0, np.uint64), *(
            pl.Series(ids.slice(at, slice_rows)).hash(seed=0).to_numpy() for at in range(0, len(ids), slice_rows))])
        order = np.argsort(hashes)
        return pa.table({"item_id": ids.take(order), "_hash": hashes[order]})

    def contains(self, ids: pl.Series) -> pl.Series:
        if not len(self.ids):
            return pl.repeat(False, len(ids), eager=True)
        if self.sorted_ids is not None:
            at = self.sorted_ids.search_sorted(ids).clip(0, len(self.sorted_ids) - 1)
            return self.sorted_ids.gather(at) == ids
        hashes = ids.hash(seed=0).to_numpy()
        ascending = np.argsort(hashes)
        at = np.empty_like(ascending)
        at[ascending] = np.searchsorted(self.hashes, hashes[ascending])
        return self.ids.gather(at.clip(0, len(self.ids) - 1)) == ids


def row_rules(rows: pl.DataFrame, known_items: KnownItems, rules: Rules) -> pl.DataFrame:
    """The row rules in STEPS order over a chunk of INTERACTIONS rows (+ ORDER): `_step` and `_reason`
    name the first rule a row fails. Language runs last, on the rows every cheaper rule kept."""
    tokens = sum(pl.col(c).str.count_matches(TOKEN_PATTERN).fill_null(0) for c in ("summary", "text"))
    known = known_items.contains(rows["item_id"])
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
    spill: WorkDir  # folder for the split's files
    catalog: str = ""
    rules: Rules | None = None
    known_items: WorkDir | None = None  # the folder holding KNOWN_ITEMS


@lru_cache(maxsize=1)  # the latest run's only: a Dask worker outlives many runs
def known_items(folder: WorkDir) -> KnownItems:
    return KnownItems(pl.from_arrow(folder.read_parquet(KNOWN_ITEMS)))  # type: ignore[arg-type]


def user_partition(keys: pl.DataFrame) -> pl.Series:
    return (keys["user_id"].hash(seed=0) % PARTITIONS).cast(pl.Int32)


def run_split(job: Job, split: splits.Split) -> tuple[int, pa.Table | None]:
    """Pass 1 of one split: spill files under job.spill; returns (rows read, item keys for items)."""
    count, keys, spills, rejected, untitled = 0, [], [], [], []
    for chunk in read_mapped(job.stream, split, job.table, files.open_source):
        count += chunk.count
        rejected.append(chunk.rejected)
        if job.table == "items":
            good, bad = titled(chunk.rows, job.catalog)
            untitled.append(bad)
            spills.append(item_rows(good).to_arrow())
            keys.append(good.select("item_id", ORDER).to_arrow())
        else:
            judged = row_rules(interaction_rows(chunk.rows), known_items(job.known_items), job.rules)  # type: ignore[arg-type]
            spills.append(judged.to_arrow())
            keys.append(judged.filter(ALIVE & pl.col("user_id").is_not_null()).select(
                "user_id", "item_id", "timestamp", ORDER).to_arrow())
    name = f"{split.index:06d}.arrow"
    if job.table == "interactions":
        write_partitions(keys, job.spill, f"keys-{name}")
        keys = []
    write_tables(spills, job.spill, f"rows-{name}")
    write_tables(rejected, job.spill, f"read-{name}")
    if job.table == "items":
        write_tables(untitled, job.spill, f"title-{name}")
    return count, pa.concat_tables(keys) if keys else None


def write_partitions(keys: list[pa.Table], folder: WorkDir, name: str) -> None:
    """A split's live keys as one Arrow file of PARTITIONS record batches, batch p = user partition p."""
    frame = pl.concat([pl.from_arrow(k) for k in keys]) if keys else pl.DataFrame(
        schema={"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Int64, ORDER: pl.Int64})
    parts = frame.with_columns(_part=user_partition(frame)).partition_by("_part", as_dict=True, include_key=False)
    schema = frame.to_arrow().schema
    with folder.output(name) as sink, pa.ipc.new_file(sink, schema) as writer:
        for part in range(PARTITIONS):
            rows = parts.get((part,))
            writer.write_batch(pa.RecordBatch.from_pylist([], schema=schema) if rows is None else
                               rows.to_arrow().cast(schema).combine_chunks().to_batches()[0])


def write_tables(tables: list[pa.Table], folder: WorkDir, name: str) -> None:
    """One Arrow IPC file of `tables`, or none when they are all empty."""
    tables = [t for t in tables if t.num_rows]
    if tables:
        folder.write_arrow(name, tables)


def in_order(folder: WorkDir, prefix: str) -> list[str]:
    return [name for name in folder.names(f"{prefix}-") if name.endswith(".arrow")]


def batches(folder: WorkDir, names: Iterable[str]) -> Iterator[pa.Table]:
    """The spilled chunks in order, one at a time, each file deleted once read (the chunks still map it;
    deleting a 10M-review spill in one go at the end cost ~0.5 s with nothing else to do). They stay
    Arrow: the rows kept go to the writer as they are, and only verdict columns and rejected rows
    become Polars frames (converting every column and back again cost more than the rules)."""
    for name in names:
        with folder.input(name) as source:
            reader = pa.ipc.open_file(source)
            for batch in range(reader.num_record_batches):
                yield pa.Table.from_batches([reader.get_batch(batch)])
        folder.remove(name)


def split_by(table: pa.Table, rejected: pl.Series) -> tuple[pa.Table, pl.DataFrame]:
    """(the rows not `rejected`, as Arrow; the rejected ones, as a Polars frame)."""
    mask = rejected.to_arrow()
    return table.filter(pc.invert(mask)), pl.from_arrow(table.filter(mask))  # type: ignore[return-value]


def stream_splits(stream: Stream, raw: str, split_bytes: int, run: Callable[..., Iterable[Any]]) -> list[splits.Split]:
    path = stream.where(raw)
    if not files.exists(path):
        raise FileNotFoundError(f"{stream.path}: no such file {path}")
    planned = splits.plan(path, stream.path, files.size(path), files.open_source, split_bytes, stream.format,
                          stream.csv)
    if len(planned) > 1 and planned[0].format == "jsonl":
        planned = splits.numbered(planned, list(run(partial(splits.newlines, opener=files.open_source), planned)))
    return planned


def run_stream(job: Job, raw: str, split_bytes: int, run: Callable[..., Iterable[Any]]) -> tuple[int, list[pa.Table]]:
    """Pass 1 of a stream's splits on the workers; returns (rows read, the splits' item keys)."""
    planned = stream_splits(job.stream, raw, split_bytes, run)
    # One split runs here: a local pool's workers start on its first task, so they never start.
    results = list(tqdm((run if len(planned) > 1 else map)(partial(run_split, job), planned), total=len(planned),
                        desc=f"ingest {job.stream.path}", unit="split", disable=None))
    count = sum(n for n, _ in results)
    check_not_empty(job.stream.path, count)
    return count, [keys for _, keys in results if keys is not None]


def stream_items(plan: Plan, raw: str, catalog: str, spill: WorkDir, split_bytes: int,
                 run: Callable[..., Iterable[Any]]) -> tuple[int, pl.DataFrame]:
    """Items from a stream: pass 1 on the workers, then the unique rule on (item_id, position) keys.
    Returns (items read, the later rows of a repeated id: ORDER and `_first`, the row ref of its
    first row) for `write_items`."""
    count, keys = run_stream(Job(plan.items, "items", spill, catalog), raw, split_bytes, run)  # type: ignore[arg-type]
    key_frame = pl.concat([pl.from_arrow(k) for k in keys]) if keys else pl.DataFrame(
        schema={"item_id": pl.String, ORDER: pl.Int64})
    first = pl.col("item_id").is_first_distinct()
    later = key_frame.filter(~first)
    # A stream's row_ref is "<file>:<ORDER>": the first row of a repeated id is named from its position.
    later = later.join(key_frame.filter(first & pl.col("item_id").is_in(later["item_id"].implode())),
                       on="item_id", suffix="_of_first").select(
        ORDER, _first=pl.format("{}:{}", pl.lit(plan.items.path), f"{ORDER}_of_first"))  # type: ignore[union-attr]
    return count, later


def write_items(spill: WorkDir, later: pl.DataFrame, out: Output) -> None:
    """The spilled items in source order, less the later rows of a repeated id (quarantined)."""
    for name in in_order(spill, "read"):
        out.quarantine_part("items_read", spill.read_arrow(name))
    for name in in_order(spill, "title"):
        out.quarantine_part("items_title", spill.read_arrow(name))
    for rows in batches(spill, in_order(spill, "rows")):
        first = pl.from_arrow(rows.select([ORDER])).join(later, on=ORDER, how="left", maintain_order="left")["_first"]
        kept, repeated = split_by(rows, first.is_not_null())
        out.items(kept)
        out.quarantine_part("items_unique", duplicates(repeated.with_columns(first.filter(first.is_not_null()))))


def whole_items(items: Items, catalog: str, out: Output) -> None:
    kept, parts = checked_whole_items(items, catalog)
    for phase, part in parts:
        out.quarantine_part(phase, part)
    out.items(kept)


def run(plan: Plan, raw: str, catalog: str, rules: Rules, out: Output, workers: int, split_bytes: int,
        executor: ExecutorSettings = ExecutorSettings()) -> dict[str, Any]:
    """Write items, interactions and quarantine parts through `out`; returns raw counts and source stats."""
    with run_folder(executor.work_url, out.folder / "spill", "ingest") as spill:
        with open_executor(executor, workers, WORKER_ENV) as pool:
            run_map = pool.map
            for table in ("items", "interactions"):
                (spill / table).makedirs()
            if isinstance(plan.items, Stream):
                items_raw, later = stream_items(plan, raw, catalog, spill / "items", split_bytes, run_map)
                write_items(spill / "items", later, out)
                stats: dict[str, int] = {}
            else:
                whole = plan.items()
                items_raw, stats = whole.raw, whole.stats
                whole_items(whole, catalog, out)
            spill.write_parquet(KNOWN_ITEMS, KnownItems.by_hash(out.item_ids()))
            # The item keys and ids (O(items)) are freed, but mimalloc keeps the pages: hand them back
            # (10M reviews: 256 -> ~60 MB held here).
            pa.default_memory_pool().release_unused()
            job = Job(plan.interactions, "interactions", spill / "interactions", catalog, rules, spill)
            interactions_raw, _ = run_stream(job, raw, split_bytes, run_map)
            rejected = set_rejections(spill / "interactions", rules, run_map)
        write_interactions(spill / "interactions", rejected, out)
    return {"raw": {"items": items_raw, "interactions": interactions_raw}, "stats": stats}


def write_interactions(spill: WorkDir, rejected: pl.DataFrame, out: Output) -> None:
    """The spilled interactions in source order: the rows no rule rejected, and the quarantine of the
    others, with the set rules' verdicts (`rejected`: ORDER, _step, sorted by ORDER) joined in."""
    for name in in_order(spill, "read"):
        out.quarantine_part("interactions_read", spill.read_arrow(name))
    rejected_at = rejected[ORDER]
    for rows in batches(spill, in_order(spill, "rows")):
        if not rows.num_rows:
            continue
        # A chunk holds ascending positions: join only the verdicts in its range (at 10M reviews, joining
        # all of them to every chunk cost ~15 ms a chunk, a tenth of that sliced).
        order = rows.column(ORDER)
        start = rejected_at.search_sorted(order[0].as_py(), "left")
        end = rejected_at.search_sorted(order[-1].as_py(), "right")
        verdict = pl.from_arrow(rows.select([ORDER, "_step", "_reason"])).join(
            rejected.slice(start, end - start), on=ORDER, how="left", maintain_order="left", suffix="_set").select(
            "_reason", _step=pl.coalesce("_step", "_step_set"))
        verdict = verdict.with_columns(_reason=pl.coalesce("_reason", pl.col("_step").replace_strict(
            REASONS, default=None)))
        kept, dropped = split_by(rows, verdict["_step"].is_not_null())
        out.interactions(kept)
        dropped = dropped.with_columns(verdict.filter(pl.col("_step").is_not_null()))
        out.quarantine_part("interactions_filters", quarantine_frame(
            dropped, "interactions", step=pl.col("_step"), reason=pl.col("_reason"),
            field=pl.col("_step").replace_strict(STEPS)))


def set_rejections(spill: WorkDir, rules: Rules, run: Callable[..., Iterable[Any]]) -> pl.DataFrame:
    """The duplicate and user_positives verdicts (ORDER, _step) sorted by ORDER, the user partitions
    shared out over the workers a few at a time."""
    groups = [range(start, start + PARTITIONS // 8) for start in range(0, PARTITIONS, PARTITIONS // 8)]
    verdicts = [pl.from_arrow(t) for t in run(partial(partition_rejections, spill=spill, rules=rules), groups)]
    return pl.concat(verdicts).sort(ORDER)  # type: ignore[arg-type]


def partition_rejections(parts: range, spill: WorkDir, rules: Rules) -> pa.Table:
    """The set-rule verdicts of user partitions `parts`, each read from every split's keys file."""
    known_items.cache_clear()  # pass 1 is over: this worker's item lookup (O(items)) is not needed again
    verdicts = [pl.DataFrame(schema={ORDER: pl.Int64, "_step": pl.String})]
    sources = [spill.input(name) for name in in_order(spill, "keys")]
    readers = [pa.ipc.open_file(source) for source in sources]
    for part in parts:
        keys = [reader.get_batch(part) for reader in readers]
        if any(b.num_rows for b in keys):
            verdicts.append(set_rules(pl.from_arrow(pa.Table.from_batches(keys)), rules))  # type: ignore[arg-type]
    for source in sources:
        source.close()
    return pl.concat(verdicts).to_arrow()
