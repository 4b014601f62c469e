"""The small instruction LM (SmolLM2-135M-Instruct): a plain safetensors copy of the GGUF, and greedy generation.

transformers reads a GGUF only as a dequantized model that can be neither saved nor trained while its
quantizer is attached; `semrec llm` detaches it once and saves a plain safetensors folder (weights,
config, tokenizer with its chat template) that `describe` and `intent` load.

    semrec llm --gguf models/llm/gguf/SmolLM2-135M-Instruct.Q4_1.gguf --out models/llm/smollm2
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipelines.common.atomic import atomic_dir


@dataclass(frozen=True)
class Generation:
    text: str
    new_tokens: int


def dequantize(gguf: Path, out: Path) -> None:
    """Load `gguf` dequantized, detach the quantizer, and save model + tokenizer to `out` (atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    if not gguf.is_file():
        raise FileNotFoundError(f"{gguf}: no such GGUF file (run the fetch_llm stage)")
    kwargs: dict[str, Any] = {"gguf_file": gguf.name}
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, quantization_config=GgufConfig(dequantize=True), **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    save(model, tokenizer, out)


def save(model: Any, tokenizer: Any, out: Path) -> None:
    """Save model (safetensors) + tokenizer into `out`, all or nothing."""
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for path in tmp.iterdir():
            os.chmod(path, 0o644)


def load(folder: str | Path) -> tuple[Any, Any]:
    """Return (model in eval mode, tokenizer padding on the left) from a safetensors folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a model folder (run `semrec llm` / the llm stage)")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def chat_prompt(tokenizer: Any, user: str, system: str | None = None) -> str:
    """The chat-formatted prompt text, ending where the assistant's answer starts."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@torch.inference_mode()
def generate(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int,
             batch_size: int = 16) -> list[Generation]:
    """Greedy-decode each prompt (batched, left-padded); the text stops at the end-of-turn token."""
    results: list[Generation] = []
    eos = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")]
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False)
        output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                                pad_token_id=tokenizer.pad_token_id)
        for row in output[:, batch["input_ids"].shape[1]:]:
            tokens = row.tolist()
            tokens = tokens[:next((i for i, t in enumerate(tokens) if t in eos), len(tokens))]
            results.append(Generation(tokenizer.decode(tokens, skip_special_tokens=True).strip(), len(tokens)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec llm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", required=True, type=Path, help="the fetched GGUF file")
    parser.add_argument("--out", required=True, type=Path, help="safetensors model folder to write")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    dequantize(args.gguf, args.out)
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f}s")
    return 0
