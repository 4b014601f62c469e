"""train: a few MNRL steps on real review pairs lower the loss; LoRA merges into a plain model."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from pairs_slices import write_fashion_pairs
from sentence_transformers import SentenceTransformer

from pipelines import train
from pipelines.common.atomic import write_parquet
from pipelines.retrieval.validation import Validation
from pipelines.train import (
    TrainParams,
    add_lora,
    device_settings,
    merge_lora,
    with_hard_negatives,
)

BASE = Path(__file__).resolve().parents[1] / "models" / "base" / "all-MiniLM-L6-v2"
PARAMS = {"enabled": True, "base_model": str(BASE), "seed": 42, "max_steps": 4, "batch_size": 8,
          "gradient_accumulation_steps": 1, "learning_rate": 1e-4, "warmup_ratio": 0.1, "temperature": 0.05,
          "max_seq_length": 64, "lora": False, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
          "lora_targets": {"bert": ["query", "key", "value", "dense"], "mpnet": ["q", "k", "v", "o", "dense"]},
          "hard_negatives": False, "hard_negatives_range_min": 2, "eval_steps": 2,
          "checkpoint_metric": "fused_recall@10", "early_stopping_patience": 0}
CATALOGS = {"fashion": {"source": "data/fetched", "ingest": {"plugin": "womens_clothing"}}}


def mnrl_loss(model: SentenceTransformer, queries: list[str], documents: list[str]) -> float:
    """The MultipleNegativesRankingLoss of (query i, document i) against all documents, scale 20."""
    model.max_seq_length = PARAMS["max_seq_length"]  # as trained
    q = model.encode(queries, normalize_embeddings=True, convert_to_tensor=True)
    d = model.encode(documents, normalize_embeddings=True, convert_to_tensor=True)
    return float(torch.nn.functional.cross_entropy(20 * q @ d.T, torch.arange(len(queries))))


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    """32 real training pairs with 32 distinct items (4 steps of 8; a repeated document would make the
    evaluation loss ambiguous)."""
    folder = write_fashion_pairs(tmp_path_factory.mktemp("pairs"))
    pairs = pq.read_table(folder / "train.parquet")
    first_of_item = {item: row for row, item in reversed(list(enumerate(pairs["item_id"].to_pylist())))}
    write_parquet(pairs.take(sorted(first_of_item.values())[:32]), folder / "train.parquet")
    return folder


def test_a_few_steps_on_real_pairs_lower_the_loss_and_write_the_curves(pairs_dir, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train": PARAMS, "catalogs": CATALOGS}))
    out, curve_csv, validation_csv = tmp_path / "finetuned", tmp_path / "train_loss.csv", tmp_path / "validation.csv"
    assert train.main(["--catalog", "fashion", "--pairs", str(pairs_dir), "--out", str(out), "--loss-csv",
                       str(curve_csv), "--validation-csv", str(validation_csv), "--params", str(params)]) == 0

    dataset, _ = train.training_dataset(pairs_dir)
    queries, documents = dataset["anchor"], dataset["positive"]
    before = mnrl_loss(SentenceTransformer(str(BASE), device="cpu"), queries, documents)
    after = mnrl_loss(SentenceTransformer(str(out), device="cpu"), queries, documents)
    assert after < before * 0.9, (before, after)
    with curve_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and all(float(r["loss"]) > 0 for r in rows)
    with validation_csv.open() as f:  # checkpoints scored on the validation pairs every eval_steps steps
        scored = list(csv.DictReader(f))
    assert [int(r["step"]) for r in scored] == [2, 4]
    assert all(0 <= float(r["fused_recall@10"]) <= 1 and "dense_mrr@10" in r for r in scored)


def test_training_stops_early_and_keeps_the_best_scored_checkpoint(pairs_dir, tmp_path, monkeypatch):
    """Scripted validation scores (0.5 at step 2, then 0.3): patience 1 stops at step 4 of 8, and the saved
    model is the step-2 checkpoint, not the last weights."""
    scores, seen = iter([0.5, 0.3, 0.9, 0.9]), []

    def scripted(self, model, batch_size):
        seen.append(model[0].auto_model.embeddings.word_embeddings.weight.detach().clone())
        value = next(scores)
        return {f"{system}_{metric}": value for system in ("dense", "fused")
                for metric in ("recall@10", "mrr@10", "ndcg@10")}

    monkeypatch.setattr(Validation, "score", scripted)
    params = TrainParams.from_section(PARAMS | {"max_steps": 8, "early_stopping_patience": 1})
    log = train.train(pairs_dir, params, tmp_path / "finetuned")

    assert [row["step"] for row in log.validation] == [2, 4] and [step for step, _ in log.rows] == [1, 2, 3, 4]
    kept = SentenceTransformer(str(tmp_path / "finetuned"), device="cpu")[0].auto_model
    assert torch.equal(kept.embeddings.word_embeddings.weight, seen[0])
    assert not torch.equal(seen[0], seen[1])  # the weights did move after the kept checkpoint


def test_device_selection_trains_with_amp_on_cuda_only():
    assert device_settings(cuda=False, bf16_supported=False) == {"use_cpu": True, "bf16": False, "fp16": False}
    assert device_settings(cuda=True, bf16_supported=True) == {"use_cpu": False, "bf16": True, "fp16": False}
    assert device_settings(cuda=True, bf16_supported=False) == {"use_cpu": False, "bf16": False, "fp16": True}


def test_lora_adapter_merges_into_a_plain_model_with_the_same_outputs(tmp_path):
    model = SentenceTransformer(str(BASE), device="cpu")
    add_lora(model, TrainParams.from_section(PARAMS | {"lora": True}))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:  # LoRA starts as a no-op (B = 0): make it change the outputs
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    texts = ["a flowy summer dress that runs small", "warm wool sweater"]
    with_adapter = model.encode(texts)
    merge_lora(model)
    model.save(str(tmp_path / "merged"))
    reloaded = SentenceTransformer(str(tmp_path / "merged"), device="cpu")
    assert not list((tmp_path / "merged").rglob("adapter_config.json"))
    np.testing.assert_allclose(reloaded.encode(texts), with_adapter, atol=1e-5)
    base = SentenceTransformer(str(BASE), device="cpu").encode(texts)
    assert np.abs(base - with_adapter).max() > 1e-3


def test_mined_hard_negatives_are_other_real_documents(pairs_dir):
    dataset, corpus = train.training_dataset(pairs_dir)
    dataset = dataset.select(range(12))
    triplets = with_hard_negatives(dataset, SentenceTransformer(str(BASE), device="cpu"), corpus, range_min=2)
    assert triplets.column_names == ["anchor", "positive", "negative"] and len(triplets) >= 10
    assert all(row["negative"] in corpus and row["negative"] != row["positive"] for row in triplets)


def test_params_with_unknown_or_missing_keys_or_metrics_are_refused():
    with pytest.raises(ValueError, match=r"unknown keys \['epochs'\], missing keys \['seed'\]"):
        TrainParams.from_section({k: v for k, v in PARAMS.items() if k != "seed"} | {"epochs": 1})
    with pytest.raises(ValueError, match="checkpoint_metric must be one of"):
        TrainParams.from_section(PARAMS | {"checkpoint_metric": "recall@10"})
