"""The embed stage resumes: a run stopped mid-way continues where it stopped, and gives the same array."""

from __future__ import annotations

import json

import numpy as np
import pytest
from snapshot_fixture import items_table, write_encoder

from pipelines import embed
from serving.encoder import Encoder


class StopAfter:
    """An encoder that fails on its `calls`-th chunk, as a killed run would stop."""

    def __init__(self, encoder: Encoder, calls: int) -> None:
        self.encoder, self.calls, self.dim = encoder, calls, encoder.dim

    def encode(self, texts, batch_size):
        self.calls -= 1
        if self.calls < 0:
            raise KeyboardInterrupt
        return self.encoder.encode(texts, batch_size=batch_size)


def test_a_stopped_run_resumes_and_gives_the_same_array(tmp_path):
    texts = items_table().column("document").to_pylist() * 3
    encoder = Encoder.load(write_encoder(tmp_path / "encoder"), "int8", threads=1)
    whole = tmp_path / "whole.npy"
    embed.embed_to_npy(encoder, texts, whole, batch_size=1, resume_key="k")
    out = tmp_path / "embeddings.npy"
    with pytest.raises(KeyboardInterrupt):
        embed.embed_to_npy(StopAfter(encoder, 2), texts, out, batch_size=1, resume_key="k")  # 2 chunks of 16
    assert not out.exists() and json.loads((tmp_path / "embeddings.npy.progress.json").read_text())["done"] == 32
    assert embed.embed_to_npy(encoder, texts, out, batch_size=1, resume_key="k") == len(texts) - 32
    assert np.array_equal(np.load(out), np.load(whole))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embeddings.npy", "encoder", "whole.npy"]
    # another key (other documents or encoder) starts over
    with pytest.raises(KeyboardInterrupt):
        embed.embed_to_npy(StopAfter(encoder, 1), texts, out, batch_size=1, resume_key="k")
    assert embed.embed_to_npy(encoder, texts, out, batch_size=1, resume_key="other") == len(texts)
    assert np.array_equal(np.load(out), np.load(whole))


def test_without_a_key_a_failed_run_leaves_no_partial_file(tmp_path):
    encoder = Encoder.load(write_encoder(tmp_path / "encoder"), "int8", threads=1)
    with pytest.raises(KeyboardInterrupt):
        embed.embed_to_npy(StopAfter(encoder, 0), ["a", "b"], tmp_path / "e.npy", batch_size=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder"]
