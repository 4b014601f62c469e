"""train stage: fine-tune the bi-encoder on (query, item document) pairs, keeping the best checkpoint.

    semrec train --catalog fashion --pairs data/fashion/pairs --out models/fashion/finetuned \
                 --loss-csv reports/fashion/train_loss.csv --validation-csv reports/fashion/train_validation.csv

MultipleNegativesRankingLoss (in-batch negatives, scale 1/temperature), AdamW with a linear schedule and
10% warmup, gradient accumulation, and a no-duplicates batch sampler (a repeated text in a batch would be
a false negative). Every `eval_steps` steps the model is scored on the validation pairs
(pipelines.retrieval.validation: dense and RRF-fused with BM25, over every document) and the checkpoint best
by `checkpoint_metric` is the one kept (training stops after `early_stopping_patience` scored checkpoints
without a better one): the output is a candidate for the `select` stage, not the shipped encoder by
assumption. CUDA with
mixed precision (bf16 where supported, else fp16) when present, CPU otherwise (`device_settings`).
`lora: true` trains a LoRA adapter on the attention/dense layers of the params-selected architecture and
merges it into the weights, so the output is a plain sentence-transformers folder either way.
`hard_negatives: true` adds one mined hard negative per pair (`sentence_transformers.util.mine_hard_negatives`).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
    mine_hard_negatives,
)
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.sentence_transformer.training_args import BatchSamplers
from transformers import EarlyStoppingCallback, TrainerCallback

from pipelines.common.atomic import atomic_dir, write_csv
from pipelines.common.finetuned import write_not_trained
from pipelines.common.params import ParamsError, catalog_block, load_section, with_overrides
from pipelines.common.schemas import DOCUMENTS, PAIRS, conform
from pipelines.retrieval.validation import Validation, ValidationEvaluator, check_metric


@dataclass(frozen=True)
class TrainParams:
    enabled: bool  # false: no fine-tune, the output is only a note (pipelines.common.finetuned)
    base_model: Path
    seed: int
    max_steps: int
    batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    warmup_ratio: float
    temperature: float
    max_seq_length: int
    lora: bool
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    lora_targets: dict[str, list[str]]  # by config.model_type
    hard_negatives: bool
    hard_negatives_range_min: int  # skip this many top-ranked candidates (likely unlabelled positives)
    eval_steps: int  # score the model on validation every this many steps; the best checkpoint is kept
    checkpoint_metric: str  # by this metric (pipelines.retrieval.validation.NAMES)
    early_stopping_patience: int  # stop after this many scored checkpoints without a better one (0: never)

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> TrainParams:
        fields = cls.__dataclass_fields__
        unknown = sorted(set(section) - set(fields))
        missing = sorted(set(fields) - set(section))
        if unknown or missing:
            raise ParamsError(f"train: unknown keys {unknown}, missing keys {missing}")
        if not isinstance(section["enabled"], bool):
            raise ParamsError(f"train.enabled: expected true or false, not {section['enabled']!r}")
        params = cls(**{**section, "base_model": Path(section["base_model"])})
        if (params.temperature <= 0 or params.max_steps < 1 or params.batch_size < 2 or params.eval_steps < 1
                or params.early_stopping_patience < 0):
            raise ParamsError("train: need temperature > 0, max_steps >= 1, batch_size >= 2, eval_steps >= 1, "
                              "early_stopping_patience >= 0")
        try:
            check_metric(params.checkpoint_metric, "train.checkpoint_metric")
        except ValueError as err:
            raise ParamsError(str(err)) from None
        return params


class LossLog(TrainerCallback):
    """Collects (optimizer step, training loss) and (step, validation metrics) from the trainer's logs."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, float]] = []
        self.validation: list[dict[str, float]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.rows.append((state.global_step, float(logs["loss"])))
        prefix = f"eval_{VALIDATION}_"
        if logs and any(key.startswith(prefix) for key in logs):
            self.validation.append({"step": state.global_step} | {
                key[len(prefix):]: float(value) for key, value in logs.items() if key.startswith(prefix)})


VALIDATION = "validation"


def device_settings(cuda: bool, bf16_supported: bool) -> dict[str, bool]:
    """Trainer precision flags: CUDA trains with AMP (bf16 where the GPU has it, else fp16); CPU in fp32."""
    return {"use_cpu": not cuda, "bf16": cuda and bf16_supported, "fp16": cuda and not bf16_supported}


def training_dataset(pairs_dir: Path) -> tuple[Dataset, list[str]]:
    """(anchor = query, positive = the item's document) for every training pair, and the corpus."""
    pairs = conform(pq.read_table(pairs_dir / "train.parquet"), PAIRS, str(pairs_dir / "train.parquet"))
    docs = conform(pq.read_table(pairs_dir / "documents.parquet"), DOCUMENTS, str(pairs_dir / "documents.parquet"))
    document = dict(zip(docs["item_id"].to_pylist(), docs["document"].to_pylist()))
    anchors = pairs["query"].to_pylist()
    positives = [document[item_id] for item_id in pairs["item_id"].to_pylist()]
    if not anchors:
        raise ValueError(f"{pairs_dir / 'train.parquet'}: no training pairs")
    return Dataset.from_dict({"anchor": anchors, "positive": positives}), list(document.values())


def with_hard_negatives(dataset: Dataset, model: SentenceTransformer, corpus: list[str], range_min: int) -> Dataset:
    """(anchor, positive, negative) triplets: the negative is the corpus document the model ranks highest
    for the anchor after skipping the `range_min` nearest (likely unlabelled positives)."""
    return mine_hard_negatives(dataset, model, corpus=corpus, range_min=range_min, num_negatives=1,
                               sampling_strategy="top", output_format="triplet")


def add_lora(model: SentenceTransformer, params: TrainParams) -> None:
    """Wrap the transformer in a LoRA adapter targeting the architecture's projection layers."""
    from peft import LoraConfig, get_peft_model

    model_type = model[0].model.config.model_type
    if model_type not in params.lora_targets:
        raise ValueError(f"params train.lora_targets has no entry for architecture {model_type!r}")
    config = LoraConfig(task_type="FEATURE_EXTRACTION", r=params.lora_r, lora_alpha=params.lora_alpha,
                        lora_dropout=params.lora_dropout, target_modules=params.lora_targets[model_type])
    model[0].model = get_peft_model(model[0].model, config)


def merge_lora(model: SentenceTransformer) -> None:
    model[0].model = model[0].model.merge_and_unload()


def fit(model: SentenceTransformer, dataset: Dataset, params: TrainParams, output_dir: Path,
        evaluator: ValidationEvaluator) -> LossLog:
    """Train `model` in place, ending on its best checkpoint by validation; return the logs."""
    device = device_settings(torch.cuda.is_available(), torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    eval_steps = min(params.eval_steps, params.max_steps)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir), max_steps=params.max_steps, per_device_train_batch_size=params.batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps, learning_rate=params.learning_rate,
        warmup_steps=params.warmup_ratio, lr_scheduler_type="linear", optim="adamw_torch", seed=params.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES, logging_steps=1, report_to="none", dataloader_drop_last=True,
        eval_strategy="steps", eval_steps=eval_steps, save_strategy="steps", save_steps=eval_steps,
        save_total_limit=2, save_only_model=True, load_best_model_at_end=True, greater_is_better=True,
        metric_for_best_model=f"eval_{VALIDATION}_{params.checkpoint_metric}",
        **device,
    )
    loss = MultipleNegativesRankingLoss(model, scale=1.0 / params.temperature)
    log = LossLog()
    callbacks: list[TrainerCallback] = [log]
    if params.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=params.early_stopping_patience))
    SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator,
                               callbacks=callbacks).train()
    return log


def train(pairs_dir: Path, params: TrainParams, out: Path) -> LossLog:
    """Fine-tune the base model on `pairs_dir`'s training pairs; save its best checkpoint (by validation) to `out`."""
    torch.manual_seed(params.seed)
    model = SentenceTransformer(str(params.base_model), device="cuda" if torch.cuda.is_available() else "cpu")
    model.max_seq_length = params.max_seq_length
    dataset, corpus = training_dataset(pairs_dir)
    if params.hard_negatives:
        dataset = with_hard_negatives(dataset, model, corpus, params.hard_negatives_range_min)
    if params.lora:
        add_lora(model, params)
    evaluator = ValidationEvaluator(Validation.load(pairs_dir), params.checkpoint_metric, params.batch_size * 2,
                                    VALIDATION)
    with tempfile.TemporaryDirectory(prefix="semrec-train-") as work, atomic_dir(out) as tmp:
        log = fit(model, dataset, params, Path(work), evaluator)
        if params.lora:
            merge_lora(model)
        model.save(str(tmp))
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True, help="a key of params.yaml catalogs (its train overrides apply)")
    parser.add_argument("--pairs", required=True, type=Path, help="pairs folder (train.parquet, documents.parquet)")
    parser.add_argument("--out", required=True, type=Path, help="output sentence-transformers folder")
    parser.add_argument("--loss-csv", required=True, type=Path, help="training loss curve (step, loss)")
    parser.add_argument("--validation-csv", required=True, type=Path,
                        help="validation metrics of every scored checkpoint (step, recall@10, mrr@10, ndcg@10, ...)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    section = with_overrides(load_section("train", args.params), catalog_block(args.catalog, args.params), "train",
                             args.catalog)
    params = TrainParams.from_section(section)
    if not params.enabled:
        write_not_trained(args.out, f"catalogs.{args.catalog}.train.enabled (or train.enabled) is false")
        write_csv([], args.loss_csv, ["step", "loss"])
        write_csv([], args.validation_csv, ["step", params.checkpoint_metric])
        print(f"train {args.catalog}: train.enabled is false, no fine-tune (select ships the base model)")
        return 0
    log = train(args.pairs, params, args.out)
    write_csv([{"step": step, "loss": loss} for step, loss in log.rows], args.loss_csv)
    write_csv(log.validation, args.validation_csv)
    best = max(log.validation, key=lambda row: row[params.checkpoint_metric])
    print(f"trained {args.out}: loss {log.rows[0][1]:.4f} -> {log.rows[-1][1]:.4f} over {log.rows[-1][0]} steps; "
          f"kept step {best['step']} ({params.checkpoint_metric} {best[params.checkpoint_metric]:.4f})")
    return 0
