"""Real movie data for the movie-understanding tests (describe, synth, intent, gazetteer, ask).

The bundled catalog goes through the real ingest mapping (pipelines.catalogs); the small LM is the
`llm` stage's folder, or, where that stage has not run, the pinned GGUF fetched and dequantized once
into .pytest_cache (the same code and checksums as the stages).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipelines import catalogs
from pipelines.common.params import catalog_block, load_section

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "fetched"
LLM = ROOT / "models" / "llm" / "smollm2"
LLM_CACHE = ROOT / ".pytest_cache" / "semrec-smollm2"


@functools.cache
def real_items() -> pa.Table:
    """The bundled movie catalog (ITEMS), as the ingest stage maps it."""
    options = catalog_block("movies", ROOT / "params.yaml")["ingest"]
    return catalogs.load("movies", RAW, options).items


def items_titled(*titles: str) -> pa.Table:
    """The real items with these titles, in the order given (each title must be in the catalog)."""
    items = real_items()
    rows = []
    for title in titles:
        match = items.filter(pc.equal(items["title"], title))
        assert match.num_rows, f"{title!r} is not in the bundled catalog"
        rows.append(match.slice(0, 1))
    return pa.concat_tables(rows)


@functools.cache
def small_lm() -> Path:
    """A folder with the dequantized SmolLM2-135M-Instruct."""
    if (LLM / "config.json").is_file():
        return LLM
    if not (LLM_CACHE / "config.json").is_file():
        from pipelines.fetch import fetch_source
        from pipelines.movies import llm

        (source,) = load_section("fetch", ROOT / "params.yaml")["llm"]
        with tempfile.TemporaryDirectory() as tmp:
            (gguf,) = fetch_source(source, Path(tmp))
            llm.dequantize(gguf, LLM_CACHE)
    return LLM_CACHE
