"""The exported intent model: greedy decoding of the LoRA-tuned LM in onnxruntime, no torch.

A folder (written by `semrec intent`) holds `model.onnx` (one decoder step: new tokens + past
keys / values -> next-token logits + extended keys / values), `tokenizer.json` and
`intent_model.json` (the prompt template, stop tokens, cache shape, decode budget). The prompt is
run once, then one token per step until a stop token; the text goes through `extraction.parse`,
so `extract` always returns a valid Extraction.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from serving.extraction import Extraction, parse

MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE = "model.onnx", "tokenizer.json", "intent_model.json"


@dataclass(frozen=True)
class IntentModelConfig:
    prompt_template: str  # chat prompt with a {text} slot, ending where the answer starts
    stop_ids: list[int]
    layers: int
    kv_heads: int
    head_dim: int
    max_new_tokens: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def read(cls, folder: Path) -> IntentModelConfig:
        path = folder / CONFIG_FILE
        raw = json.loads(path.read_text(encoding="utf-8"))
        try:
            return cls(**{name: raw[name] for name in cls.__dataclass_fields__})
        except KeyError as err:
            raise ValueError(f"{path}: missing key {err}") from err


class IntentModel:
    def __init__(self, session: ort.InferenceSession, tokenizer: Tokenizer, config: IntentModelConfig):
        self.session, self.tokenizer, self.config = session, tokenizer, config

    @classmethod
    def load(cls, folder: str | Path, threads: int | None = 1) -> IntentModel:
        folder = Path(folder)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        return cls(session, Tokenizer.from_file(str(folder / TOKENIZER_FILE)), IntentModelConfig.read(folder))

    def generate(self, text: str) -> str:
        """The model's raw answer to one message (greedy)."""
        c = self.config
        ids = self.tokenizer.encode(c.prompt_template.format(text=text), add_special_tokens=False).ids
        keys = values = np.zeros((c.layers, 1, c.kv_heads, 0, c.head_dim), dtype=np.float32)
        new = np.array([ids], dtype=np.int64)
        answer: list[int] = []
        for _ in range(c.max_new_tokens):
            logits, keys, values = self.session.run(None, {"input_ids": new, "past_keys": keys, "past_values": values})
            token = int(logits[0].argmax())
            if token in c.stop_ids:
                break
            answer.append(token)
            new = np.array([[token]], dtype=np.int64)
        return self.tokenizer.decode(answer)

    def extract(self, text: str) -> Extraction:
        return parse(self.generate(text))[0]
