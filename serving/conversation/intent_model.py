"""The exported intent model: greedy decoding of the LoRA-tuned LM in onnxruntime, no torch.

A folder (written by `semrec intent`) holds `model.onnx` (one decoder step: new tokens + past
keys / values -> next-token logits + extended keys / values), `tokenizer.json` and
`intent_model.json` (the prompt template, stop tokens, cache shape, decode budget). The prompt is
run once, then one token per step until a stop token; the text goes through `extraction.parse`,
so `extract` always returns a valid Extraction. Given an `EntityConstraint` (`serving.conversation.constrained`),
decoding keeps every entity string on the way to a known name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from serving.conversation.constrained import EntityConstraint, TokenTexts, open_entity
from serving.conversation.extraction import Extraction, parse

CANDIDATES = 64  # tokens tried, best first, where the allowed ones are not spelled out
COMPLETION_LIMIT = 2000  # names fitting a prefix, at most, for spelling out the allowed tokens
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
        # built here (~0.15 s) rather than lazily, so no request pays for it
        self.token_texts = TokenTexts(tokenizer.decode_batch([[i] for i in range(tokenizer.get_vocab_size())]))

    @classmethod
    def load(cls, folder: str | Path, threads: int | None = 1) -> IntentModel:
        folder = Path(folder)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        return cls(session, Tokenizer.from_file(str(folder / TOKENIZER_FILE)), IntentModelConfig.read(folder))

    def next_token(self, logits: np.ndarray, answer: list[int], constraint: EntityConstraint | None) -> int:
        """The argmax; with a constraint, the best token that keeps every entity string on a known name.

        Inside an entity string the allowed tokens are spelled out from the names that fit; outside
        one (or when too many names fit the prefix) the top CANDIDATES are tried, best first."""
        best = int(logits.argmax())
        if constraint is None:
            return best
        text = self.tokenizer.decode(answer)
        inside = open_entity(text)
        if inside is not None and inside[0] in constraint.names:
            remainders = constraint.completions(*inside, limit=COMPLETION_LIMIT)
            if remainders is not None:
                allowed = self.token_texts.continuing(remainders)
                return max(allowed, key=lambda t: logits[t]) if allowed else best
        k = min(CANDIDATES, len(logits))
        top = np.argpartition(-logits, k - 1)[:k]
        best_first = top[np.argsort(-logits[top])]
        return int(next((t for t in best_first if constraint.allows(text, self.token_texts.texts[t])), best))

    def generate(self, text: str, constraint: EntityConstraint | None = None) -> str:
        """The model's raw answer to one message (greedy, entity-constrained if given a constraint)."""
        c = self.config
        ids = self.tokenizer.encode(c.prompt_template.format(text=text), add_special_tokens=False).ids
        keys = values = np.zeros((c.layers, 1, c.kv_heads, 0, c.head_dim), dtype=np.float32)
        new = np.array([ids], dtype=np.int64)
        answer: list[int] = []
        for _ in range(c.max_new_tokens):
            logits, keys, values = self.session.run(None, {"input_ids": new, "past_keys": keys, "past_values": values})
            token = self.next_token(logits[0], answer, constraint)
            if token in c.stop_ids:
                break
            answer.append(token)
            new = np.array([[token]], dtype=np.int64)
        return self.tokenizer.decode(answer)

    def extract(self, text: str, constraint: EntityConstraint | None = None) -> Extraction:
        return parse(self.generate(text, constraint))[0]
