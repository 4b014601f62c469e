"""The canonical Arrow schemas: the one source of truth for every table the stages exchange.

Catalog plug-ins map their sources onto ITEMS and INTERACTIONS; every row a stage rejects goes to
QUARANTINE with its reason. Stages validate with `conform` at their edges.
"""

from __future__ import annotations

import pyarrow as pa

ITEMS = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("catalog", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("creator", pa.string()),  # brand / store / director
        pa.field("description", pa.string()),  # long text: features, overview, summary
        pa.field("categories", pa.list_(pa.string())),  # genres, department/class
        pa.field("year", pa.int32()),
        pa.field("price", pa.float64()),
        pa.field("url", pa.string()),
        pa.field("attributes", pa.string()),  # JSON object of catalog-specific display fields
        pa.field("document", pa.string(), nullable=False),  # the text the encoder embeds
    ]
)

INTERACTIONS = pa.schema(
    [
        pa.field("row_ref", pa.string(), nullable=False),  # "<source file>:<line or row>"
        pa.field("user_id", pa.string()),  # null where the catalog has no users
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("rating", pa.float32(), nullable=False),
        pa.field("timestamp", pa.int64()),  # unix seconds
        pa.field("summary", pa.string()),  # review title
        pa.field("text", pa.string()),  # review body; null for rating-only sources
    ]
)

QUARANTINE = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),  # file or stage that rejected the row
        pa.field("row_ref", pa.string(), nullable=False),
        pa.field("field", pa.string()),  # the offending field, where one is to blame
        pa.field("reason", pa.string(), nullable=False),
        pa.field("payload", pa.string()),  # the raw row, undecodable bytes backslash-escaped
    ]
)

# pairs stage: train/test/test_hard.parquet (test_hard: the test review rows with their short query).
PAIRS = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),  # review row_ref, or "<anchor>><positive>"
        pa.field("query", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),  # the positive item
        pa.field("kind", pa.string(), nullable=False),  # review | co_liked | synthetic (extra pairs)
    ]
)

# pairs stage: documents.parquet, one row per catalog item, in items.parquet order.
DOCUMENTS = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("document", pa.string(), nullable=False),  # the text the encoder embeds
    ]
)

# pairs stage: popularity.parquet, one row per catalog item, in items.parquet order (serving.prior).
POPULARITY = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("positives", pa.int64(), nullable=False),  # liked (rating >= min_rating), held-out queries excluded
    ]
)


# synth stage (movies): synthetic conversational queries, labelled by construction.
SYNTH_QUERIES = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("template", pa.string(), nullable=False),  # grammar template id ("+"-joined for multi-intent)
        pa.field("text", pa.string(), nullable=False),
        pa.field("intent", pa.string(), nullable=False),  # recommend | trivia | chitchat | help
        pa.field("titles", pa.list_(pa.string()), nullable=False),  # canonical entity names
        pa.field("genres", pa.list_(pa.string()), nullable=False),
        pa.field("people", pa.list_(pa.string()), nullable=False),
        pa.field("themes", pa.list_(pa.string()), nullable=False),
        pa.field("targets", pa.list_(pa.string()), nullable=False),  # item_ids satisfying the request
        pa.field("noise", pa.string()),  # noisy set only: typo | missing_word | multi_intent
    ]
)

# describe stage (movies): one generated or templated description per item.
DESCRIPTIONS = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("metadata_sha256", pa.string(), nullable=False),  # cache key: the grounded facts
        pa.field("description", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # llm | template
        pa.field("rejected", pa.string()),  # why the LLM's text was rejected (then source = template)
        pa.field("generation_seconds", pa.float64()),  # LLM rows: their share of the generating run's time
        pa.field("new_tokens", pa.int32()),  # LLM rows: tokens the LM wrote
    ]
)


def conform(table: pa.Table, schema: pa.Schema, name: str) -> pa.Table:
    """Select and cast `table` to `schema`, naming the table and column on failure."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}")
    columns = []
    for field in schema:
        column = table.column(field.name)
        try:
            column = column.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise ValueError(f"{name}: column {field.name!r} is not {field.type}: {err}") from err
        if not field.nullable and column.null_count:
            raise ValueError(f"{name}: column {field.name!r} has {column.null_count} null(s)")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
