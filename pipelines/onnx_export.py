"""Export a sentence-transformers bi-encoder as one ONNX graph: transformer + mean pooling + L2 norm.

The graph takes `input_ids` and `attention_mask` (int64, dynamic batch and sequence axes) and returns
the (batch, dim) L2-normalised embedding, so the reader (`serving.encoder`) needs no torch.

BERT-family graphs (MiniLM) are then rewritten with onnxruntime's transformer fusions (one Attention
op per layer, SkipLayerNormalization, BiasGelu): at batch 1 the short query pays for every small op,
and the fused graph quantizes to an INT8 model ~17% faster (bench/encoder). The fusion matches the
eager attention pattern, so these models are exported with eager attention.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer

from serving.encoder import INPUT_NAMES, OUTPUT_NAME, EncoderConfig

OPSET = 17
FUSED_ARCHITECTURES = ("bert",)  # config.model_type values onnxruntime's BERT fusions apply to


class MeanPooledEncoder(torch.nn.Module):
    """The transformer followed by attention-masked mean pooling and L2 normalisation."""

    def __init__(self, transformer: torch.nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, p=2.0, dim=1)


def check_mean_pooling(model: SentenceTransformer) -> None:
    """The graph hard-codes mean pooling: refuse a model whose Pooling module says otherwise."""
    pooling = model[1].get_config_dict().get("pooling_mode")
    if pooling != "mean":
        raise ValueError(f"ONNX export supports mean pooling only; this model pools with {pooling!r}")


def export_onnx(model: SentenceTransformer, path: Path, fuse: bool = True) -> None:
    """Write the FP32 graph to `path` (legacy TorchScript exporter: one file, exact parity), fused
    where the architecture allows unless `fuse` is False (bench/encoder measures the difference)."""
    check_mean_pooling(model)
    transformer = copy.deepcopy(model[0].model).float().cpu()
    fuse = fuse and transformer.config.model_type in FUSED_ARCHITECTURES
    if fuse:
        transformer.set_attn_implementation("eager")
    module = MeanPooledEncoder(transformer).eval()
    sample = model.tokenizer(["an example sentence", "another"], padding=True, return_tensors="pt")
    inputs = tuple(sample[name] for name in INPUT_NAMES)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES} | {OUTPUT_NAME: {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(module, inputs, str(path), input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    if fuse:
        fuse_bert(path, transformer.config.num_attention_heads, transformer.config.hidden_size)


def fuse_bert(path: Path, num_heads: int, hidden_size: int) -> None:
    """Rewrite the graph at `path` in place with onnxruntime's BERT fusions."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimize_model(str(path), model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                   opt_level=0).save_model_to_file(str(path))


def encoder_config(model: SentenceTransformer, name: str) -> EncoderConfig:
    return EncoderConfig(model=name, dim=int(model.get_embedding_dimension()),
                         max_seq_length=int(model.max_seq_length), pooling="mean")


def save_tokenizer(model: SentenceTransformer, path: Path) -> None:
    """Save the fast tokenizer with its pad token set, so the reader can pad batches without transformers."""
    tokenizer: Tokenizer = copy.deepcopy(model.tokenizer.backend_tokenizer)
    hf = model.tokenizer
    tokenizer.enable_padding(pad_id=hf.pad_token_id, pad_token=hf.pad_token, pad_type_id=hf.pad_token_type_id)
    tokenizer.enable_truncation(max_length=int(model.max_seq_length))
    tokenizer.save(str(path))
