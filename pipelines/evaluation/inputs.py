"""The catalog mode's inputs: the pipeline's documents, held-out query sets, shipped path and model folders."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines.common.finetuned import is_trained
from pipelines.common.queries import QuerySet, query_set
from pipelines.common.schemas import DOCUMENTS, PAIRS, conform
from pipelines.evaluation.params import EvaluateParams
from pipelines.evaluation.run import Inputs
from pipelines.retrieval.fusion_report import FusionReport
from pipelines.retrieval.shipped import local_snapshot
from pipelines.retrieval.systems import Corpus

SELECT_FIELDS = ("chosen", "base_only", "metric", "validation_queries", "candidates", "guard")


@dataclass(frozen=True)
class ModelFolders:
    """The model systems' sentence-transformers folders (None: not scored)."""
    base_model: Path | None = None  # zero_shot
    finetuned: Path | None = None
    selected: Path | None = None

    def systems(self, chosen: str | None) -> tuple[dict[str, Path], dict[str, str]]:
        """The trained model systems, and the aliases that spare encoding the selected model twice."""
        folders = {system: folder for system, folder in (("zero_shot", self.base_model),
                                                          ("finetuned", self.finetuned), ("selected", self.selected))
                   if folder is not None and is_trained(folder)}
        alias = {"base": "zero_shot", "finetuned": "finetuned"}.get(chosen or "")
        if "selected" in folders and alias in folders:
            del folders["selected"]
            return folders, {"selected": alias}
        return folders, {}


def read_corpus(path: Path) -> Corpus:
    documents = conform(pq.read_table(path), DOCUMENTS, str(path))
    return Corpus(documents["item_id"].to_pylist(), documents["document"].to_pylist())


def read_sets(tests: Sequence[tuple[str, Path]], params: EvaluateParams, corpus: Corpus
              ) -> tuple[dict[str, QuerySet], dict[str, str]]:
    """The named query sets, and each set that repeats an earlier one -> that set (scored once: movies have no
    hard form, so their test_hard is test again)."""
    sets: dict[str, QuerySet] = {}
    same: dict[str, str] = {}
    for name, path in tests:
        queries = query_set(conform(pq.read_table(path), PAIRS, str(path)), params.max_queries, params.seed)
        if unknown := sorted({item for rel in queries.relevance for item in rel} - set(corpus.ids)):
            raise ValueError(f"{path}: {len(unknown)} relevant item(s) have no document, e.g. {unknown[:5]}")
        twin = next((other for other, known in sets.items() if known == queries), None)
        if twin:
            same[name] = twin
        else:
            sets[name] = queries
    return sets, same


def catalog_inputs(documents: Path, tests: Sequence[tuple[str, Path]], index: Path, encoder: Path, fusion: Path,
                   popularity: Path | None, select: Path | None, models: ModelFolders,
                   params: EvaluateParams) -> Inputs:
    """The shipped path as the fusion stage chose it (with the prior, from `popularity`, when it tuned one), and the
    model systems the select report names."""
    corpus = read_corpus(documents)
    sets, same = read_sets(tests, params, corpus)
    report = FusionReport.read(fusion)
    report.check_counts(popularity, str(fusion))
    snapshot = local_snapshot(index, encoder, dict(zip(corpus.ids, corpus.texts)), report.fusion, threads=1,
                              popularity=popularity)
    selection = json.loads(select.read_text()) if select else {}
    folders, aliases = models.systems(selection.get("chosen"))
    context: dict[str, Any] = {"fusion_validation": {key: value for key, value in report.to_json().items()
                                                     if key in ("metric", "validation_queries", "validation",
                                                                "bm25_prior")}}
    if same:
        context["same_queries_as"] = same
    if selection:
        context["select"] = {key: selection[key] for key in SELECT_FIELDS if key in selection}
    prior_weight = report.bm25_prior.prior_weight if report.bm25_prior else None
    return Inputs(corpus, sets, snapshot, folders, aliases, prior_weight, context)
