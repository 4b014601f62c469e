"""serving.encoder: loads an exported folder with onnxruntime + tokenizers only, batches and truncates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from pipelines.onnx_export import encoder_config, export_onnx, save_tokenizer
from pipelines.quantize import quantize_int8
from serving.encoder import CONFIG_FILE, TOKENIZER_FILE, Encoder, model_file

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "models" / "base" / "all-MiniLM-L6-v2"
TEXTS = ["a flowy summer dress", "Runs small. I ordered my usual size and it was tight across the chest. " * 30,
         "", "warm wool sweater for winter", "x"]


@pytest.fixture(scope="module")
def model() -> SentenceTransformer:
    model = SentenceTransformer(str(BASE), device="cpu")
    model.max_seq_length = 64  # a short limit, so that truncation is exercised
    return model


@pytest.fixture(scope="module")
def folder(model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("encoder")
    export_onnx(model, folder / model_file("fp32"))
    quantize_int8(folder / model_file("fp32"), folder / model_file("int8"), keep_fp32=[])
    save_tokenizer(model, folder / TOKENIZER_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(encoder_config(model, "all-MiniLM-L6-v2").to_json()))
    return folder


def test_reader_process_loads_and_encodes_without_torch_or_transformers(folder):
    script = f"""
import sys
import numpy as np
from serving.encoder import Encoder
for variant in ("int8", "fp32"):
    vectors = Encoder.load({str(folder)!r}, variant, threads=1).encode({TEXTS!r})
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32, (vectors.shape, vectors.dtype)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {{"torch", "transformers", "pipelines"}})
assert not heavy, heavy
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_encodings_match_pytorch_truncated_the_same_way_in_any_batching(model, folder):
    reference = model.encode(TEXTS, normalize_embeddings=True)
    encoder = Encoder.load(folder, "fp32")
    one_batch, small_batches = encoder.encode(TEXTS), encoder.encode(TEXTS, batch_size=2)
    assert np.sum(one_batch * reference, axis=1).min() >= 0.9999
    np.testing.assert_allclose(small_batches, one_batch, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)
    int8 = Encoder.load(folder, "int8").encode(TEXTS)
    assert np.sum(int8 * one_batch, axis=1).mean() >= 0.97


def test_bad_arguments_are_refused_with_clear_errors(folder, tmp_path):
    with pytest.raises(ValueError, match="variant must be one of"):
        Encoder.load(folder, "fp16")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not one str"):
        Encoder.load(folder, "fp32").encode("a single string")  # type: ignore[arg-type]
    for name in (model_file("int8"), TOKENIZER_FILE):
        (tmp_path / name).symlink_to(folder / name)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"model": "m", "dim": 768, "max_seq_length": 64, "pooling": "mean"}))
    with pytest.raises(ValueError, match="output has dimension 384, encoder.json says 768"):
        Encoder.load(tmp_path)
