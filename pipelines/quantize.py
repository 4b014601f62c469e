"""quantize stage: export the fine-tuned encoder to ONNX, quantize it to INT8, and gate on parity.

    semrec quantize --model models/fashion/finetuned --pairs data/fashion/pairs \
                    --out models/fashion/onnx --report reports/fashion/quantize.json

Writes the encoder folder `serving.encoder` loads: `model_fp32.onnx` (transformer + mean pooling + L2
norm, opset 17), `model_int8.onnx` (onnxruntime dynamic quantization, INT8 weights PER CHANNEL: per
tensor drops MiniLM's cosine to 0.95), `tokenizer.json` and `encoder.json`. MatMul nodes named by
`keep_fp32[<config.model_type>]` stay FP32 (MPNet's FFN output projections do not survive INT8).

Parity on held-out texts (test queries and the documents of their items): the stage FAILS, leaving the
previous encoder folder in place, when mean cosine(ONNX FP32, ONNX INT8) < `min_int8_cosine` or mean
cosine(PyTorch, ONNX FP32) < `min_fp32_cosine`. The figures and file sizes go to the report.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pyarrow.parquet as pq
from onnxruntime.quantization import QuantType, quantize_dynamic
from sentence_transformers import SentenceTransformer
from tqdm import tqdm

from pipelines.common.atomic import atomic_dir, write_json
from pipelines.common.params import load_section
from pipelines.common.schemas import DOCUMENTS, PAIRS, conform
from pipelines.onnx_export import encoder_config, export_onnx, save_tokenizer
from pipelines.retrieval.encode import encode, load_model
from serving.encoder import CONFIG_FILE, TOKENIZER_FILE, Encoder, model_file


class ParityError(RuntimeError):
    """The exported or quantized encoder drifts too far from the model it came from."""


@dataclass(frozen=True)
class QuantizeParams:
    min_int8_cosine: float
    min_fp32_cosine: float
    parity_texts: int
    keep_fp32: dict[str, list[str]]  # config.model_type -> regexes over ONNX MatMul node names

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> QuantizeParams:
        params = cls(min_int8_cosine=float(section["min_int8_cosine"]),
                     min_fp32_cosine=float(section["min_fp32_cosine"]),
                     parity_texts=int(section["parity_texts"]), keep_fp32=dict(section.get("keep_fp32") or {}))
        if params.parity_texts < 1:
            raise ValueError(f"params quantize.parity_texts must be >= 1, not {params.parity_texts}")
        return params


def matmuls_matching(onnx_path: Path, patterns: list[str]) -> list[str]:
    """Names of the graph's MatMul nodes that match any of `patterns` (re.search)."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [node.name for node in graph.node
            if node.op_type == "MatMul" and any(re.search(p, node.name) for p in patterns)]


def quantize_int8(fp32_path: Path, int8_path: Path, keep_fp32: list[str]) -> None:
    """Dynamic INT8 quantization, weights per output channel; `keep_fp32` nodes are left alone.

    Shape inference cannot type the outputs of fused contrib ops (Attention, ...): they are float."""
    quantize_dynamic(fp32_path, int8_path, per_channel=True, weight_type=QuantType.QInt8,
                     nodes_to_exclude=keep_fp32, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def held_out_texts(pairs_dir: Path, n: int) -> list[str]:
    """Up to `n` test queries and up to `n` documents of their items: text the model was not trained on."""
    test = conform(pq.read_table(pairs_dir / "test.parquet"), PAIRS, str(pairs_dir / "test.parquet"))
    docs = conform(pq.read_table(pairs_dir / "documents.parquet"), DOCUMENTS, str(pairs_dir / "documents.parquet"))
    document = dict(zip(docs["item_id"].to_pylist(), docs["document"].to_pylist()))
    queries = test["query"].to_pylist()[:n]
    items = list(dict.fromkeys(test["item_id"].to_pylist()))[:n]
    texts = queries + [document[item_id] for item_id in items]
    if not texts:
        raise ValueError(f"{pairs_dir / 'test.parquet'}: no held-out texts for the parity check")
    return texts


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (n, dim) arrays of L2-normalised vectors."""
    return np.sum(a.astype(np.float64) * b.astype(np.float64), axis=1)


def parity(model: SentenceTransformer, folder: Path, texts: list[str]) -> dict[str, float]:
    torch_vectors = encode(model, texts, batch_size=32)
    fp32 = Encoder.load(folder, "fp32").encode(texts)
    int8 = Encoder.load(folder, "int8").encode(texts)
    fp32_cos, int8_cos = cosines(torch_vectors, fp32), cosines(fp32, int8)
    return {"fp32_vs_pytorch_cosine_mean": float(fp32_cos.mean()), "fp32_vs_pytorch_cosine_min": float(fp32_cos.min()),
            "int8_vs_fp32_cosine_mean": float(int8_cos.mean()), "int8_vs_fp32_cosine_min": float(int8_cos.min())}


def check(figures: dict[str, float], params: QuantizeParams) -> None:
    failures = []
    if figures["int8_vs_fp32_cosine_mean"] < params.min_int8_cosine:
        failures.append(f"mean cosine(ONNX FP32, INT8) {figures['int8_vs_fp32_cosine_mean']:.4f} "
                        f"< min_int8_cosine {params.min_int8_cosine}")
    if figures["fp32_vs_pytorch_cosine_mean"] < params.min_fp32_cosine:
        failures.append(f"mean cosine(PyTorch, ONNX FP32) {figures['fp32_vs_pytorch_cosine_mean']:.6f} "
                        f"< min_fp32_cosine {params.min_fp32_cosine}")
    if failures:
        raise ParityError("parity check failed: " + "; ".join(failures))


def quantize(model_dir: Path, pairs_dir: Path, out: Path, params: QuantizeParams) -> dict[str, Any]:
    """Write the encoder folder `out` (only if parity holds) and return the report."""
    model = load_model(model_dir)
    architecture = model[0].model.config.model_type
    texts = held_out_texts(pairs_dir, params.parity_texts)
    with atomic_dir(out) as tmp, tqdm(total=3, desc="quantize", unit="step", disable=None) as steps:
        fp32_path, int8_path = tmp / model_file("fp32"), tmp / model_file("int8")
        export_onnx(model, fp32_path)
        save_tokenizer(model, tmp / TOKENIZER_FILE)
        write_json(encoder_config(model, str(model_dir)).to_json(), tmp / CONFIG_FILE)
        steps.update()
        kept = matmuls_matching(fp32_path, params.keep_fp32.get(architecture, []))
        quantize_int8(fp32_path, int8_path, kept)
        steps.update()
        figures = parity(model, tmp, texts)
        steps.update()
        check(figures, params)
        sizes = {"model_fp32_bytes": fp32_path.stat().st_size, "model_int8_bytes": int8_path.stat().st_size}
    return {"model": str(model_dir), "architecture": architecture, "weights": "int8 per channel",
            "kept_fp32_nodes": kept, "parity_texts": len(texts), **figures, **sizes,
            "int8_size_ratio": round(sizes["model_fp32_bytes"] / sizes["model_int8_bytes"], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec quantize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="fine-tuned sentence-transformers folder")
    parser.add_argument("--pairs", required=True, type=Path, help="pairs folder (held-out texts for parity)")
    parser.add_argument("--out", required=True, type=Path, help="encoder folder to write")
    parser.add_argument("--report", required=True, type=Path, help="quantize.json metrics")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = QuantizeParams.from_section(load_section("quantize", args.params))
    report = quantize(args.model, args.pairs, args.out, params)
    write_json(report, args.report)
    print(f"quantized {args.out}: cosine INT8/FP32 {report['int8_vs_fp32_cosine_mean']:.4f}, "
          f"FP32/PyTorch {report['fp32_vs_pytorch_cosine_mean']:.6f}, {report['int8_size_ratio']}x smaller, "
          f"{len(report['kept_fp32_nodes'])} MatMul(s) kept FP32")
    return 0
