"""The one FP32 encode: a sentence-transformers model's L2-normalised embeddings, as float32.

Every stage that embeds with a PyTorch model (train's validation, select, quantize's parity check,
evaluate, cross_catalog, the movie stages and the demo) calls `encode`, so they all compare the same
vectors; the shipped INT8 ONNX encoder is serving.encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def load_model(folder: str | Path) -> Any:  # -> SentenceTransformer (torch is imported only when a model loads)
    """A sentence-transformers folder, on the CPU."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def encode(model: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """(len(texts), dim) float32 embeddings of `texts`, each of unit length (cosine = inner product)."""
    return model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False).astype(np.float32, copy=False)
