"""intent stage: LoRA-tune the small LM to read a movie-chat message into strict extraction JSON.

    {"intent":"recommend","titles":["Heat"],"genres":["Crime"],"people":[],"themes":[]}

The LoRA adapter (attention and MLP projections of the top `lora_layers` layers) learns from the
synthetic train queries to write the sparse form (empty lists left out) and is merged into the
weights. Every output goes through `serving.extraction.parse`, so it always parses; repairs are
counted. The tuned model, the base model prompted few-shot and the gazetteer baseline are scored on
the same clean test and noisy sets: intent macro-F1 and per-field entity F1 (`--metrics`).

`--out` is what a snapshot ships for `ask`: the merged model as an ONNX decoder step
(`serving.conversation.intent_model`), the gazetteer's data (`gazetteer.json`), and `conversation.json` naming
the extractor `ask` uses: the exported model if its exact-match rate on the clean queries beats the
gazetteer's, else the gazetteer. The exported model is scored as `ask` runs it, with decoding
constrained to catalog names (`lora_constrained`), beside the torch model decoding freely (`lora`,
with the share of clean queries on which the export, decoding freely too, agrees with it).

    semrec intent --llm models/llm/smollm2 --items data/movies/ingest/items.parquet \
        --synth data/movies/synth --out models/movies/intent --metrics reports/movies/intent.json \
        --loss-log reports/movies/intent_loss.csv
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch

from pipelines.common.atomic import atomic_dir, atomic_path, write_json
from pipelines.common.params import load_section
from pipelines.movies import llm
from pipelines.movies.gazetteer import build as build_gazetteer
from pipelines.movies.intent_onnx import export
from pipelines.movies.kg import movies_from_items
from pipelines.movies.synth import gold
from serving.conversation.ask import CHOICE_FILE, GAZETTEER_FILE, constrained_extractor
from serving.conversation.extraction import FIELDS, INTENTS, Extraction, parse
from serving.conversation.gazetteer import Gazetteer
from serving.conversation.intent_model import IntentModel

SYSTEM = "Extract intent, titles, genres, people, themes as JSON."


@dataclass(frozen=True)
class IntentParams:
    seed: int
    threads: int  # torch threads: 1 is several times faster than 2 when other jobs share the 2 cores
    steps: int
    batch_size: int
    learning_rate: float
    lora_r: int
    lora_alpha: int
    lora_targets: list[str]
    lora_layers: int  # adapt the top N decoder layers (0: all)
    max_new_tokens: int
    eval_clean: int  # test queries scored (0: all)
    eval_noisy: int
    eval_base: int  # queries per set for the (slow, long-prompt) few-shot base model
    eval_onnx: int  # clean queries on which the ONNX export is checked against the torch model
    few_shot: int  # examples in the base model's prompt, one per intent first

    def __post_init__(self) -> None:
        known = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
        if not self.lora_targets or set(self.lora_targets) - known:
            raise ValueError(f"intent.lora_targets must be a non-empty subset of {sorted(known)}")


def prompt(tokenizer: Any, text: str, examples: Sequence[dict[str, Any]] = ()) -> str:
    """Chat prompt: the instruction, optional worked examples as earlier turns, then the message."""
    messages = [{"role": "system", "content": SYSTEM}]
    for example in examples:
        messages += [{"role": "user", "content": example["text"]},
                     {"role": "assistant", "content": gold(example).to_sparse_json()}]
    messages.append({"role": "user", "content": text})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def few_shot_examples(train: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The first train query of each intent, then the next ones with most entities, up to n."""
    firsts = [next(r for r in train if r["intent"] == intent) for intent in INTENTS
              if any(r["intent"] == intent for r in train)]
    rest = sorted((r for r in train if r not in firsts), key=lambda r: -sum(len(r[f]) for f in FIELDS))
    return (firsts + rest)[:n]


def encode_example(tokenizer: Any, row: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(input ids, labels): the loss covers the answer JSON and its end-of-turn token only."""
    prompt_ids = tokenizer(prompt(tokenizer, row["text"]), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(gold(row).to_sparse_json() + "<|im_end|>", add_special_tokens=False)["input_ids"]
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-pad so every answer ends at the last position (the loss then needs only the last logits)."""
    width = max(len(ids) for ids, _ in examples)
    pads = [width - len(ids) for ids, _ in examples]
    mask = torch.tensor([[0] * pad + [1] * len(ids) for pad, (ids, _) in zip(pads, examples)])
    return {"input_ids": torch.tensor([[pad_id] * pad + ids for pad, (ids, _) in zip(pads, examples)]),
            "attention_mask": mask, "position_ids": (mask.cumsum(1) - 1).clamp(min=0),
            "labels": torch.tensor([[-100] * pad + labels for pad, (_, labels) in zip(pads, examples)])}


def answer_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token loss over the answer tokens, computing vocabulary logits only where they count."""
    labels = batch["labels"]
    keep = int((labels != -100).sum(1).max())
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"], logits_to_keep=keep + 1, use_cache=False).logits
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, -keep:].flatten(),
                                             ignore_index=-100)


def train_lora(model: Any, tokenizer: Any, train: list[dict[str, Any]], params: IntentParams,
               loss_log: Path) -> Any:
    """Train a LoRA adapter for `params.steps` steps, merge it, return the plain merged model.

    Only the top `lora_layers` layers get adapters, so the backward pass stops there."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(params.seed)
    layers = model.config.num_hidden_layers
    top = range(layers - params.lora_layers, layers) if 0 < params.lora_layers < layers else None
    model = get_peft_model(model, LoraConfig(
        r=params.lora_r, lora_alpha=params.lora_alpha, lora_dropout=0.0, target_modules=params.lora_targets,
        layers_to_transform=list(top) if top else None, task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=params.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - 0.9 * step / params.steps)
    examples = [encode_example(tokenizer, row) for row in train]
    order = random.Random(params.seed)
    queue: list[int] = []
    with atomic_path(loss_log) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss"])
        for step in range(1, params.steps + 1):
            if len(queue) < params.batch_size:
                queue += order.sample(range(len(examples)), len(examples))
            chosen, queue = queue[:params.batch_size], queue[params.batch_size:]
            loss = answer_loss(model, collate([examples[i] for i in chosen], tokenizer.pad_token_id))
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            writer.writerow([step, f"{loss.item():.4f}"])
            if step % 10 == 0 or step == params.steps:
                print(f"intent: step {step}/{params.steps} loss {loss.item():.4f}", flush=True)
    model.eval()
    return model.merge_and_unload()


def predict_lm(model: Any, tokenizer: Any, texts: list[str], examples: list[dict[str, Any]],
               max_new_tokens: int) -> tuple[list[Extraction], dict[str, float]]:
    started = time.perf_counter()
    outputs = llm.generate(model, tokenizer, [prompt(tokenizer, t, examples) for t in texts], max_new_tokens)
    seconds = time.perf_counter() - started
    parsed = [parse(o.text) for o in outputs]
    return [e for e, _ in parsed], {"repaired": sum(r for _, r in parsed), "queries": len(texts),
                                     "queries_per_s": round(len(texts) / seconds, 2)}


def f1(tp: int, fp: int, fn: int) -> float:
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def field_counts(predicted: Extraction, expected: Extraction, name: str) -> tuple[int, int, int]:
    """(true, false, missed) positives of one field, compared case-insensitively as sets."""
    got, want = ({v.casefold() for v in getattr(x, name)} for x in (predicted, expected))
    return len(got & want), len(got - want), len(want - got)


def scores(predicted: list[Extraction], expected: list[Extraction]) -> dict[str, float]:
    """Intent macro-F1 over the intents present; micro-F1 per entity field and over all fields."""
    per_intent = []
    for intent in sorted({e.intent for e in expected}):
        tp = sum(p.intent == e.intent == intent for p, e in zip(predicted, expected))
        fp = sum(p.intent == intent != e.intent for p, e in zip(predicted, expected))
        fn = sum(e.intent == intent != p.intent for p, e in zip(predicted, expected))
        per_intent.append(f1(tp, fp, fn))
    result = {"intent_macro_f1": sum(per_intent) / len(per_intent)}
    totals = (0, 0, 0)
    for name in FIELDS:
        counts = tuple(map(sum, zip(*(field_counts(p, e, name) for p, e in zip(predicted, expected)))))
        result[f"{name}_f1"] = f1(*counts)
        totals = tuple(t + c for t, c in zip(totals, counts))
    result["entity_micro_f1"] = f1(*totals)
    result["exact_match"] = sum(p == e for p, e in zip(predicted, expected)) / len(expected)
    return {k: round(v, 4) for k, v in result.items()}


def first(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return rows if n <= 0 else rows[:n]


def score_served(extract: Callable[[str], Extraction], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The exported model as `ask` runs it (ONNX, entity-constrained) on `rows`."""
    started = time.perf_counter()
    predicted = [extract(r["text"]) for r in rows]
    seconds = time.perf_counter() - started
    return scores(predicted, [gold(r) for r in rows]) | {"queries": len(rows),
                                                        "queries_per_s": round(len(rows) / seconds, 2)}


def export_agreement(model: IntentModel, rows: list[dict[str, Any]], torch_predictions: list[Extraction]) -> float:
    """Share of `rows` on which the exported model, decoding freely, answers as the torch model did."""
    return round(sum(model.extract(r["text"]) == t for r, t in zip(rows, torch_predictions)) / len(rows), 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec intent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", required=True, type=Path, help="base LM folder (semrec llm)")
    parser.add_argument("--items", required=True, type=Path, help="movies items.parquet (for the gazetteer)")
    parser.add_argument("--synth", required=True, type=Path, help="folder with train/test/noisy.parquet")
    parser.add_argument("--out", required=True, type=Path,
                        help="serving folder: the ONNX intent model + gazetteer.json (serving.conversation.ask)")
    parser.add_argument("--metrics", required=True, type=Path, help="intent.json to write")
    parser.add_argument("--loss-log", required=True, type=Path, help="train loss CSV (a DVC plot)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = IntentParams(**load_section("intent", args.params))
    torch.set_num_threads(params.threads)
    train, test, noisy = (pq.read_table(args.synth / f"{n}.parquet").to_pylist() for n in ("train", "test", "noisy"))
    sets = {"clean": first(test, params.eval_clean), "noisy": first(noisy, params.eval_noisy)}

    spec = build_gazetteer(movies_from_items(pq.read_table(args.items)))
    gazetteer = Gazetteer(spec)
    report: dict[str, Any] = {"gazetteer": {}, "base_few_shot": {}, "lora": {}}
    for name, rows in sets.items():
        report["gazetteer"][name] = scores([gazetteer.extract(r["text"]) for r in rows], [gold(r) for r in rows])

    model, tokenizer = llm.load(args.llm)
    examples = few_shot_examples(train, params.few_shot)
    for name, rows in sets.items():
        rows = first(rows, params.eval_base)
        predicted, stats = predict_lm(model, tokenizer, [r["text"] for r in rows], examples, params.max_new_tokens)
        report["base_few_shot"][name] = scores(predicted, [gold(r) for r in rows]) | stats

    started = time.perf_counter()
    model = train_lora(model, tokenizer, train, params, args.loss_log)
    report["lora"]["train_seconds"] = round(time.perf_counter() - started, 1)
    clean_predictions: list[Extraction] = []
    for name, rows in sets.items():
        predicted, stats = predict_lm(model, tokenizer, [r["text"] for r in rows], [], params.max_new_tokens)
        report["lora"][name] = scores(predicted, [gold(r) for r in rows]) | stats
        clean_predictions = clean_predictions or predicted

    with atomic_dir(args.out) as folder:
        export(model, tokenizer, prompt(tokenizer, "{text}"), folder, params.max_new_tokens)
        write_json(spec, folder / GAZETTEER_FILE)
        exported = IntentModel.load(folder)
        agreement_rows = first(sets["clean"], params.eval_onnx)
        report["lora"]["onnx_agreement_with_torch"] = export_agreement(
            exported, agreement_rows, clean_predictions[: len(agreement_rows)])
        extract = constrained_extractor(exported, gazetteer)
        report["lora_constrained"] = {name: score_served(extract, rows) for name, rows in sets.items()}
        served, baseline = report["lora_constrained"]["clean"], report["gazetteer"]["clean"]
        chosen = "model" if served["exact_match"] > baseline["exact_match"] else "gazetteer"
        report["served_extractor"] = chosen
        write_json({"extractor": chosen}, folder / CHOICE_FILE)
    write_json(report, args.metrics)
    print(report)
    return 0
