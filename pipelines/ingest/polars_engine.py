"""Polars ingest engine (the default): the rules of pipelines/ingest/filters.py as one lazy query.

Each step marks the rows it rejects (`_step`, `_reason`) among the rows still alive, so one query
yields both the kept rows and every rejected row with its reason, in source order (no step sorts).
Window rules partition by "alive" too, so rows an earlier step rejected never count as duplicates
or as a user's positives.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.common.schemas import INTERACTIONS, conform
from pipelines.ingest.filters import (
    ORDER,
    REASONS,
    REJECTED,
    TOKEN_PATTERN,
    WRONG_LANGUAGE,
    Filtered,
    Rules,
    languages,
)

ALIVE = pl.col("_step").is_null()
LATEST = 2**63 - 1
TOKENS = pl.col("_tokens")


def reject(query: pl.LazyFrame, step: str, condition: pl.Expr, reason: pl.Expr | None = None) -> pl.LazyFrame:
    """Mark the alive rows meeting `condition` as rejected by `step`."""
    hit = ALIVE & condition
    reason = pl.lit(REASONS[step]) if reason is None else reason
    return query.with_columns(
        _step=pl.when(hit).then(pl.lit(step)).otherwise("_step"),
        _reason=pl.when(hit).then(reason).otherwise("_reason"),
    )


def detect(texts: pl.Series) -> pl.Series:
    """Detected language per text, null where the text is null (a batch of rows)."""
    present = texts.is_not_null()
    if not present.any():
        return pl.Series(texts.name, [None] * len(texts), dtype=pl.String)
    detected = pl.Series(languages(texts.filter(present).to_list()), dtype=pl.String)
    return pl.Series(texts.name, [None] * len(texts), dtype=pl.String).scatter(present.arg_true(), detected)


def query(interactions: pl.LazyFrame, item_ids: pl.Series, rules: Rules) -> pl.LazyFrame:
    """The filter steps over `interactions` (INTERACTIONS columns plus ORDER)."""
    tokens = sum(pl.col(c).str.count_matches(TOKEN_PATTERN).fill_null(0) for c in ("summary", "text"))
    text = pl.concat_str("summary", "text", separator=" ", ignore_nulls=True)
    q = interactions.with_columns(_step=pl.lit(None, pl.String), _reason=pl.lit(None, pl.String), _tokens=tokens)
    q = reject(q, "rating", pl.col("rating") < rules.min_rating)
    q = reject(q, "tokens", (TOKENS > 0) & (TOKENS < rules.min_tokens))
    q = reject(q, "item", ~pl.col("item_id").is_in(item_ids.implode()))
    # Classify only the rows every cheap rule kept, in batches.
    q = q.with_columns(_lang=pl.when(ALIVE & (TOKENS > 0)).then(text)
                       .map_batches(detect, return_dtype=pl.String, is_elementwise=True))
    q = reject(q, "language", pl.col("_lang") != rules.language, pl.lit(WRONG_LANGUAGE) + pl.col("_lang"))
    has_user = pl.col("user_id").is_not_null()
    # Position in (timestamp, file order), unknown timestamps last: filters.earliest_first's order.
    q = q.with_columns(_earliest=pl.col("timestamp").fill_null(LATEST).rank("ordinal"))
    earliest = pl.col("_earliest")
    q = reject(q, "duplicate", has_user & (earliest != earliest.min().over("user_id", "item_id", ALIVE)))
    return reject(q, "user_positives", has_user & (pl.len().over("user_id", ALIVE) < rules.min_user_positives))


def run(interactions: pa.Table, item_ids: pa.Array, rules: Rules) -> Filtered:
    source = pl.from_arrow(interactions).lazy().with_row_index(ORDER).with_columns(pl.col(ORDER).cast(pl.Int64))
    frame = query(source, pl.Series(item_ids, dtype=pl.String), rules).collect(engine="streaming")
    kept = frame.filter(pl.col("_step").is_null()).select(INTERACTIONS.names)
    rejected = frame.filter(pl.col("_step").is_not_null()).select(REJECTED.names)
    return Filtered(conform(kept.to_arrow(), INTERACTIONS, "kept interactions"),
                    conform(rejected.to_arrow(), REJECTED, "rejected interactions"))
