"""quantize: the ONNX graph matches PyTorch, INT8 is 1/3.5 the size, and parity is enforced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from pairs_slices import write_fashion_pairs
from sentence_transformers import SentenceTransformer

from pipelines import quantize
from pipelines.quantize import ParityError, QuantizeParams
from serving.encoder import Encoder

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "models" / "base" / "all-MiniLM-L6-v2"
PARAMS = {"min_int8_cosine": 0.99, "min_fp32_cosine": 0.9999, "parity_texts": 16, "keep_fp32": {}}


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    return write_fashion_pairs(tmp_path_factory.mktemp("pairs"))


def test_stage_writes_an_onnx_encoder_that_matches_pytorch(pairs_dir, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"quantize": PARAMS}))
    out, report_path = tmp_path / "onnx", tmp_path / "quantize.json"
    assert quantize.main(["--model", str(BASE), "--pairs", str(pairs_dir), "--out", str(out),
                          "--report", str(report_path), "--params", str(tmp_path / "params.yaml")]) == 0
    report = json.loads(report_path.read_text())
    assert report["int8_vs_fp32_cosine_mean"] >= 0.99 and report["kept_fp32_nodes"] == []
    assert report["model_int8_bytes"] * 3.5 <= report["model_fp32_bytes"]

    texts = pq.read_table(pairs_dir / "test_hard.parquet")["query"].to_pylist()[:8] + ["long text " * 400, "x"]
    reference = SentenceTransformer(str(BASE), device="cpu").encode(texts, normalize_embeddings=True)
    fp32 = Encoder.load(out, "fp32").encode(texts, batch_size=4)
    assert np.sum(fp32 * reference, axis=1).min() >= 0.9999
    assert json.loads((out / "encoder.json").read_text())["dim"] == 384


def with_activation_outliers(model: SentenceTransformer) -> SentenceTransformer:
    """Scale one FFN hidden unit per layer up 1000x (and its output weights down): nearly the same function
    in FP32, but the outlier swamps INT8's per-tensor activation range, as in MPNet."""
    with torch.no_grad():
        for layer in model[0].model.encoder.layer:
            layer.intermediate.dense.weight[0] *= 1000
            layer.intermediate.dense.bias[0] *= 1000
            layer.output.dense.weight[:, 0] /= 1000
    return model


def test_broken_model_fails_parity_and_keeps_the_previous_encoder_unless_ffn_stays_fp32(pairs_dir, tmp_path):
    broken = tmp_path / "broken"
    with_activation_outliers(SentenceTransformer(str(BASE), device="cpu")).save(str(broken))
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "previous.txt").write_text("the last good encoder")

    with pytest.raises(ParityError, match=r"mean cosine\(ONNX FP32, INT8\) 0\.\d+ < min_int8_cosine 0.99"):
        quantize.quantize(broken, pairs_dir, out, QuantizeParams.from_section(PARAMS))
    assert [p.name for p in out.iterdir()] == ["previous.txt"]

    # the MPNet rule of params.yaml, applied to this BERT, keeps the FFN output MatMuls FP32 and passes
    mpnet_rule = yaml.safe_load((ROOT / "params.yaml").read_text())["quantize"]["keep_fp32"]["mpnet"]
    report = quantize.quantize(broken, pairs_dir, out, QuantizeParams.from_section(
        PARAMS | {"keep_fp32": {"bert": mpnet_rule}}))
    assert report["kept_fp32_nodes"] == [f"/transformer/encoder/layer.{i}/output/dense/MatMul" for i in range(6)]
    assert report["int8_vs_fp32_cosine_mean"] >= 0.99
