"""Polars ingest engine (the default): the rules of pipelines/filters.py as one lazy query.

Each step marks the rows it rejects (`_step`, `_reason`) among the rows still alive, so one query
yields both the kept rows and every rejected row with its reason. Window rules partition by
"alive" too, so rows an earlier step rejected never count as duplicates or as a user's positives.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.filters import (
    ORDER, REASONS, REJECTED, TOKEN_PATTERN, WRONG_LANGUAGE, Filtered, Rules, languages,
)
from pipelines.schemas import INTERACTIONS, conform

ALIVE = pl.col("_step").is_null()
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
    return pl.Series(languages(texts.to_list()), dtype=pl.String)


def query(interactions: pl.LazyFrame, item_ids: pl.Series, rules: Rules) -> pl.LazyFrame:
    """The filter steps over `interactions` (INTERACTIONS columns plus ORDER)."""
    tokens = sum(pl.col(c).str.count_matches(TOKEN_PATTERN).fill_null(0) for c in ("summary", "text"))
    text = pl.concat_str("summary", "text", separator=" ", ignore_nulls=True)
    q = interactions.with_columns(_step=pl.lit(None, pl.String), _reason=pl.lit(None, pl.String), _tokens=tokens)
    q = reject(q, "rating", pl.col("rating") < rules.min_rating)
    q = reject(q, "tokens", (TOKENS > 0) & (TOKENS < rules.min_tokens))
    q = reject(q, "item", ~pl.col("item_id").is_in(item_ids))
    # Classify only the rows every cheap rule kept, in batches.
    q = q.with_columns(_lang=pl.when(ALIVE & (TOKENS > 0)).then(text)
                       .map_batches(detect, return_dtype=pl.String, is_elementwise=True))
    q = reject(q, "language", pl.col("_lang") != rules.language, pl.lit(WRONG_LANGUAGE) + pl.col("_lang"))
    has_user = pl.col("user_id").is_not_null()
    q = q.sort("timestamp", ORDER, nulls_last=True)
    q = reject(q, "duplicate", has_user & (pl.int_range(pl.len()).over("user_id", "item_id", ALIVE) > 0))
    q = reject(q, "user_positives", has_user & (pl.len().over("user_id", ALIVE) < rules.min_user_positives))
    return q.sort(ORDER)


def run(interactions: pa.Table, item_ids: pa.Array, rules: Rules) -> Filtered:
    source = pl.from_arrow(interactions).lazy().with_row_index(ORDER).with_columns(pl.col(ORDER).cast(pl.Int64))
    frame = query(source, pl.Series(item_ids, dtype=pl.String), rules).collect(engine="streaming")
    kept = frame.filter(pl.col("_step").is_null()).select(INTERACTIONS.names)
    rejected = frame.filter(pl.col("_step").is_not_null()).select(REJECTED.names)
    return Filtered(conform(kept.to_arrow(), INTERACTIONS, "kept interactions"),
                    conform(rejected.to_arrow(), REJECTED, "rejected interactions"))
