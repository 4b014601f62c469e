"""Polars ingest engine (the default): a plan's files streamed split by split, in bounded memory.

Items first (the item rule needs their ids), then interactions, each in two passes over the splits
(pipelines/catalogs/splits.py), run by the executor's workers (pipelines/common/executor.py):
1. Read each split in chunks (typed, mapped, unreadable rows quarantined), apply the rules of one row
   (items: the title check; interactions: rating, tokens, item, then language on the rows they kept) and
   spill the chunks with their verdicts (pipelines/ingest/spill.py), with the key columns the rules over
   many rows need.
2. Apply the rules over many rows to the key columns alone (items: unique ids; interactions: duplicate
   and user_positives, one user partition at a time), then write the spilled chunks out in source order
   with every verdict joined in.
Peak memory: a split's chunks per worker, one key partition, and the kept item ids (in each worker).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from pipelines.catalogs import files, splits
from pipelines.catalogs.readers import check_not_empty
from pipelines.catalogs.source import Items, Plan, Stream, duplicates, quarantine_frame, titled
from pipelines.catalogs.streams import Mapped, read_mapped
from pipelines.common.executor import ExecutorSettings, open_executor
from pipelines.common.workdir import WorkDir, run_folder
from pipelines.ingest import langid, spill
from pipelines.ingest.filters import (
    CHEAP_STEPS,
    ORDER,
    REASONS,
    RULE,
    STEPS,
    TOKEN_PATTERN,
    WRONG_LANGUAGE,
    Rules,
    languages,
)
from pipelines.ingest.output import Output, interaction_rows, item_rows
from pipelines.ingest.output import whole_items as checked_whole_items

ALIVE = pl.col("_step").is_null()
LATEST = 2**63 - 1  # an unknown timestamp sorts after every known one
# One Polars thread per worker process (read at import, so the driver keeps its pool): the workers fill the
# cores, and idle pool threads spinning for work would only slow the other workers down.
WORKER_ENV = {"POLARS_MAX_THREADS": "1"}


class KnownItems:
    """Membership in the kept item ids (the item rule's measure), by binary search over their sorted
    64-bit hashes: a chunk's hashes searched in ascending order walk the array in cache order, and no
    hash set of millions of Python strings is held per worker. A hit is confirmed on the id; if two kept
    ids share a hash, the ids are searched instead. Built from `by_hash(ids)`, which the stage writes
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
    """The row rules in TABLE order over a chunk of INTERACTIONS rows (+ ORDER): `_step` and `_reason`
    name the first rule a row fails. Language runs last, on the rows every cheaper rule kept."""
    tokens = sum(pl.col(c).str.count_matches(TOKEN_PATTERN).fill_null(0) for c in ("summary", "text"))
    measures = {"rating": pl.col("rating"), "tokens": pl.col("_tokens"), "item": pl.col("_known")}
    frame = rows.with_columns(_tokens=tokens, _known=known_items.contains(rows["item_id"])).with_columns(
        _step=pl.coalesce(pl.when(RULE[step].fails_expr(measures[step], rules)).then(pl.lit(step))
                          for step in CHEAP_STEPS))
    asked = frame.select(ALIVE & (pl.col("_tokens") > 0)).to_series()
    # Cut to what CLD2 reads before the texts become Python strings.
    texts = frame.filter(asked).select(pl.concat_str("summary", "text", separator=" ", ignore_nulls=True)
                                       .str.slice(0, langid.PREFIX)).to_series()
    detected = pl.Series("_lang", [None] * frame.height, pl.String).scatter(
        asked.arg_true(), pl.Series(languages(texts.to_list()), dtype=pl.String))
    wrong = ALIVE & RULE["language"].fails_expr(pl.col("_lang"), rules)
    return frame.with_columns(detected).with_columns(
        _step=pl.when(wrong).then(pl.lit("language")).otherwise("_step"),
        _reason=pl.when(wrong).then(pl.lit(WRONG_LANGUAGE) + pl.col("_lang")).otherwise(
            pl.col("_step").replace_strict(REASONS, default=None)),
    ).drop("_tokens", "_known", "_lang")


def set_rules(keys: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """(ORDER, _step) of the rows the duplicate and user_positives rules reject, from key columns
    (spill.KEYS) of live rows with a user."""
    keys = keys.sort(pl.col("timestamp").fill_null(LATEST), ORDER).with_columns(
        _earliest=pl.struct("user_id", "item_id").is_first_distinct())
    duplicate = RULE["duplicate"].fails_expr(pl.col("_earliest"))
    few = keys.filter(~duplicate).filter(RULE["user_positives"].fails_expr(pl.len().over("user_id"), rules))
    return pl.concat([keys.filter(duplicate).select(ORDER, _step=pl.lit("duplicate")),
                      few.select(ORDER, _step=pl.lit("user_positives"))])


@dataclass(frozen=True)
class Job:
    """What a worker needs to run one split (everything picklable)."""

    stream: Stream
    table: str
    spill: WorkDir  # folder for the split's files
    catalog: str = ""
    rules: Rules | None = None
    known_items: WorkDir | None = None  # the folder holding spill.KNOWN_ITEMS


@lru_cache(maxsize=1)  # the latest run's only: a Dask worker outlives many runs
def known_items(folder: WorkDir) -> KnownItems:
    return KnownItems(pl.from_arrow(folder.read_parquet(spill.KNOWN_ITEMS)))  # type: ignore[arg-type]


def judge_items(chunk: Mapped, catalog: str) -> dict[str, pa.Table]:
    """Pass 1 of an items chunk: the title check, and the (item_id, ORDER) keys of the unique rule."""
    good, untitled = titled(chunk.rows, catalog)
    return {"read": chunk.rejected, "title": untitled, "rows": item_rows(good).to_arrow(),
            "keys": good.select("item_id", ORDER).to_arrow()}


def judge_interactions(chunk: Mapped, known: KnownItems, rules: Rules) -> dict[str, pa.Table]:
    """Pass 1 of an interactions chunk: the row rules, and the keys of the set rules (live rows with a user)."""
    judged = row_rules(interaction_rows(chunk.rows), known, rules)
    keys = judged.filter(ALIVE & pl.col("user_id").is_not_null()).select(*spill.KEYS)
    return {"read": chunk.rejected, "rows": judged.to_arrow(), "keys": keys.to_arrow()}


def run_split(job: Job, split: splits.Split) -> tuple[int, pa.Table | None]:
    """Pass 1 of one split: read, judge and spill its chunks; returns (rows read, item keys for items)."""
    if job.table == "items":
        judge = partial(judge_items, catalog=job.catalog)
    else:
        judge = partial(judge_interactions, known=known_items(job.known_items), rules=job.rules)  # type: ignore[arg-type]
    parts: dict[str, list[pa.Table]] = {"rows": [], "read": [], "title": [], "keys": []}  # spill kind -> tables
    count = 0
    for chunk in read_mapped(job.stream, split, job.table, files.open_source):
        count += chunk.count
        for kind, table in judge(chunk).items():
            parts[kind].append(table)
    keys = parts.pop("keys")
    if job.table == "interactions":
        spill.write_keys(job.spill, split.index, keys)
        keys = []
    spill.write_split(job.spill, split.index, parts)
    return count, pa.concat_tables(keys) if keys else None


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


def stream_items(plan: Plan, raw: str, catalog: str, folder: WorkDir, split_bytes: int,
                 run: Callable[..., Iterable[Any]]) -> tuple[int, pl.DataFrame]:
    """Items from a stream: pass 1 on the workers, then the unique rule on (item_id, position) keys.
    Returns (items read, the later rows of a repeated id: ORDER and `_first`, the row ref of its
    first row) for `write_items`."""
    count, keys = run_stream(Job(plan.items, "items", folder, catalog), raw, split_bytes, run)  # type: ignore[arg-type]
    key_frame = pl.concat([pl.from_arrow(k) for k in keys]) if keys else pl.DataFrame(
        schema={"item_id": pl.String, ORDER: pl.Int64})
    first = pl.col("item_id").is_first_distinct()
    later = key_frame.filter(~first)
    # A stream's row_ref is "<file>:<ORDER>": the first row of a repeated id is named from its position.
    later = later.join(key_frame.filter(first & pl.col("item_id").is_in(later["item_id"].implode())),
                       on="item_id", suffix="_of_first").select(
        ORDER, _first=pl.format("{}:{}", pl.lit(plan.items.path), f"{ORDER}_of_first"))  # type: ignore[union-attr]
    return count, later


def write_items(folder: WorkDir, later: pl.DataFrame, out: Output) -> None:
    """The spilled items in source order, less the later rows of a repeated id (quarantined)."""
    for table in spill.tables(folder, "read"):
        out.quarantine_part("items_read", table)
    for table in spill.tables(folder, "title"):
        out.quarantine_part("items_title", table)
    for rows in spill.chunks(folder):
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
    with run_folder(executor.work_url, out.folder / "spill", "ingest") as folder:
        with open_executor(executor, workers, WORKER_ENV) as pool:
            for table in ("items", "interactions"):
                (folder / table).makedirs()
            if isinstance(plan.items, Stream):
                items_raw, later = stream_items(plan, raw, catalog, folder / "items", split_bytes, pool.map)
                write_items(folder / "items", later, out)
                stats: dict[str, int] = {}
            else:
                whole = plan.items()
                items_raw, stats = whole.raw, whole.stats
                whole_items(whole, catalog, out)
            folder.write_parquet(spill.KNOWN_ITEMS, KnownItems.by_hash(out.item_ids()))
            pa.default_memory_pool().release_unused()  # the item keys and ids are freed, but the allocator keeps pages
            job = Job(plan.interactions, "interactions", folder / "interactions", catalog, rules, folder)
            interactions_raw, _ = run_stream(job, raw, split_bytes, pool.map)
            rejected = set_rejections(folder / "interactions", rules, pool.map)
        write_interactions(folder / "interactions", rejected, out)
    return {"raw": {"items": items_raw, "interactions": interactions_raw}, "stats": stats}


def write_interactions(folder: WorkDir, rejected: pl.DataFrame, out: Output) -> None:
    """The spilled interactions in source order: the rows no rule rejected, and the quarantine of the
    others, with the set rules' verdicts (`rejected`: ORDER, _step, sorted by ORDER) joined in."""
    for table in spill.tables(folder, "read"):
        out.quarantine_part("interactions_read", table)
    for rows in spill.chunks(folder):
        if not rows.num_rows:
            continue
        verdict = chunk_verdicts(rows, rejected)
        kept, dropped = split_by(rows, verdict["_step"].is_not_null())
        out.interactions(kept)
        dropped = dropped.with_columns(verdict.filter(pl.col("_step").is_not_null()))
        out.quarantine_part("interactions_filters", quarantine_frame(
            dropped, "interactions", step=pl.col("_step"), reason=pl.col("_reason"),
            field=pl.col("_step").replace_strict(STEPS)))


def chunk_verdicts(rows: pa.Table, rejected: pl.DataFrame) -> pl.DataFrame:
    """(_reason, _step) per row of a spilled chunk: its row-rule verdict, else its set-rule verdict."""
    # A chunk holds ascending positions: join only the verdicts in its range, not all of them to every chunk.
    order, rejected_at = rows.column(ORDER), rejected[ORDER]
    start = rejected_at.search_sorted(order[0].as_py(), "left")
    end = rejected_at.search_sorted(order[-1].as_py(), "right")
    verdict = pl.from_arrow(rows.select([ORDER, "_step", "_reason"])).join(
        rejected.slice(start, end - start), on=ORDER, how="left", maintain_order="left", suffix="_set").select(
        "_reason", _step=pl.coalesce("_step", "_step_set"))
    return verdict.with_columns(_reason=pl.coalesce("_reason", pl.col("_step").replace_strict(REASONS, default=None)))


def set_rejections(folder: WorkDir, rules: Rules, run: Callable[..., Iterable[Any]]) -> pl.DataFrame:
    """The duplicate and user_positives verdicts (ORDER, _step) sorted by ORDER, the user partitions
    shared out over the workers a few at a time."""
    size = spill.PARTITIONS // 8
    groups = [range(start, start + size) for start in range(0, spill.PARTITIONS, size)]
    verdicts = [pl.from_arrow(t) for t in run(partial(partition_rejections, folder=folder, rules=rules), groups)]
    return pl.concat(verdicts).sort(ORDER)  # type: ignore[arg-type]


def partition_rejections(parts: range, folder: WorkDir, rules: Rules) -> pa.Table:
    """The set-rule verdicts of user partitions `parts`."""
    known_items.cache_clear()  # pass 1 is over: this worker's item lookup (O(items)) is not needed again
    verdicts = [pl.DataFrame(schema={ORDER: pl.Int64, "_step": pl.String})]
    for keys in spill.partitions(folder, parts):
        verdicts.append(set_rules(pl.from_arrow(keys), rules))  # type: ignore[arg-type]
    return pl.concat(verdicts).to_arrow()
