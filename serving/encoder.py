"""The query/document encoder of the reader: one ONNX graph (transformer + mean pooling + L2 norm).

An encoder folder, written by `semrec quantize`, holds `model_fp32.onnx`, `model_int8.onnx`,
`tokenizer.json` and `encoder.json` ({"model", "dim", "max_seq_length", "pooling"}). Every graph takes
int64 `input_ids` and `attention_mask` (batch, sequence) and returns `embedding` (batch, dim).
Loading it needs onnxruntime and `tokenizers` only: no torch, no transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

Variant = Literal["int8", "fp32"]
VARIANTS: tuple[str, ...] = get_args(Variant)
INPUT_NAMES: tuple[str, ...] = ("input_ids", "attention_mask")
OUTPUT_NAME = "embedding"
CONFIG_FILE = "encoder.json"
TOKENIZER_FILE = "tokenizer.json"


def model_file(variant: Variant) -> str:
    return f"model_{variant}.onnx"


@dataclass(frozen=True)
class EncoderConfig:
    """The contents of `encoder.json`: what a reader needs besides the graph and the tokenizer."""

    model: str  # the model the graph was exported from (a name, for reports)
    dim: int
    max_seq_length: int
    pooling: str  # done inside the graph; recorded for reports

    @classmethod
    def read(cls, folder: Path) -> EncoderConfig:
        path = folder / CONFIG_FILE
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        try:
            return cls(model=str(raw["model"]), dim=int(raw["dim"]), max_seq_length=int(raw["max_seq_length"]),
                       pooling=str(raw["pooling"]))
        except KeyError as err:
            raise ValueError(f"{path}: missing key {err}") from err

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "dim": self.dim, "max_seq_length": self.max_seq_length,
                "pooling": self.pooling}


def load_tokenizer(path: Path, max_seq_length: int) -> Tokenizer:
    """The saved tokenizer, truncating at `max_seq_length` and padding each batch to its longest text."""
    tokenizer = Tokenizer.from_file(str(path))
    padding = tokenizer.padding
    if padding is None:
        raise ValueError(f"{path}: no padding configuration (pad token unknown)")
    tokenizer.enable_truncation(max_length=max_seq_length)
    tokenizer.enable_padding(pad_id=padding["pad_id"], pad_token=padding["pad_token"],
                             pad_type_id=padding["pad_type_id"])
    return tokenizer


class Encoder:
    """Encode texts to (n, dim) float32 L2-normalised vectors with an exported ONNX encoder."""

    def __init__(self, session: ort.InferenceSession, tokenizer: Tokenizer, config: EncoderConfig):
        self.session = session
        self.tokenizer = tokenizer
        self.config = config
        self.dim: int = config.dim

    @classmethod
    def load(cls, folder: str | Path, variant: Variant = "int8", threads: int | None = None) -> Encoder:
        """Load `model_<variant>.onnx` from `folder`; `threads` bounds ONNX Runtime's intra-op pool."""
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, not {threads}")
        folder = Path(folder)
        config = EncoderConfig.read(folder)
        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        path = folder / model_file(variant)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph_dim = session.get_outputs()[0].shape[-1]
        if graph_dim != config.dim:
            raise ValueError(f"{path}: the graph's output has dimension {graph_dim}, {CONFIG_FILE} says {config.dim}")
        return cls(session, load_tokenizer(folder / TOKENIZER_FILE, config.max_seq_length), config)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed `texts` in batches of similar length (less padding), returned in the input order."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one str")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = self.encode_batch([texts[i] for i in rows])
        return out

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        (vectors,) = self.session.run([OUTPUT_NAME], dict(zip(INPUT_NAMES, (ids, mask))))
        return vectors
