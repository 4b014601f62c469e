"""The embed stage resumes: a run stopped mid-way embeds only the parts it had not written, and gives the same
array; a run with other inputs starts over; a failed run leaves no output."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from snapshot_fixture import items_table, write_encoder

from pipelines import embed
from pipelines.common.executor import ExecutorSettings

PART = 1 * embed.CHUNK_BATCHES * embed.PART_CHUNKS  # rows of a part at batch size 1


def run(texts: list[str], encoder, out, key: str) -> int:
    return embed.embed(pa.chunked_array([texts]), encoder, "int8", 1, out, key, ExecutorSettings(), workers=1,
                       threads=1)


def stop_at(monkeypatch: pytest.MonkeyPatch, part: int) -> None:
    """The run stops (as if killed) when it reaches part `part`."""
    embed_part = embed.embed_part

    def stopping(job, number):
        if number == part:
            raise KeyboardInterrupt
        return embed_part(job, number)

    monkeypatch.setattr(embed, "embed_part", stopping)


def test_a_stopped_run_resumes_and_gives_the_same_array(tmp_path, monkeypatch):
    texts = items_table().column("document").to_pylist() * 60
    assert len(texts) > 3 * PART
    encoder = write_encoder(tmp_path / "encoder")
    assert run(texts, encoder, tmp_path / "whole.npy", "k") == len(texts)
    out = tmp_path / "embeddings.npy"
    with monkeypatch.context() as patch:
        stop_at(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            run(texts, encoder, out, "k")
    assert not out.exists() and len(list(tmp_path.glob("embeddings.npy.parts/*/part-*.npy"))) == 2
    assert run(texts, encoder, out, "k") == len(texts) - 2 * PART
    assert np.array_equal(np.load(out), np.load(tmp_path / "whole.npy"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embeddings.npy", "encoder", "whole.npy"]
    # another key (other documents, encoder or batch size) starts over
    with monkeypatch.context() as patch:
        stop_at(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            run(texts, encoder, out, "k")
    assert run(texts, encoder, out, "other") == len(texts)
    assert np.array_equal(np.load(out), np.load(tmp_path / "whole.npy"))
    assert not (tmp_path / "embeddings.npy.parts").exists()


def test_a_failed_run_leaves_no_output(tmp_path):
    encoder = write_encoder(tmp_path / "encoder")
    with pytest.raises(FileNotFoundError):
        run(["a", "b"], tmp_path / "no-encoder", tmp_path / "e.npy", "k")
    assert not (tmp_path / "e.npy").exists() and not (tmp_path / "e.npy.partial").exists()
    assert run(["a", "b"], encoder, tmp_path / "e.npy", "k") == 2
