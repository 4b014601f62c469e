"""params `evaluate`, typed and checked before any model loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.common.bootstrap import BootstrapParams
from pipelines.common.metrics import parse_metric
from pipelines.common.params import typed_section


@dataclass(frozen=True)
class EvaluateParams:
    metrics: tuple[str, ...]  # e.g. recall@10, mrr@10, ndcg@10 (pipelines.common.metrics)
    curve_ks: tuple[int, ...]  # the recall curve's cutoffs
    max_queries: int  # a seeded sample of each set's distinct query texts; 0: all
    seed: int
    bootstrap: BootstrapParams
    batch_size: int  # FP32 model encoding
    latency_queries: int  # batch-1 timings of the shipped path
    warn_ci_half_width: float  # warn when a shipped Recall@10 CI is wider than +-this
    beir: dict[str, Any]  # the BEIR mode's index (pipelines.index.IndexSettings)

    def __post_init__(self) -> None:
        for name in self.metrics:
            parse_metric(name)

    @classmethod
    def from_section(cls, section: object) -> EvaluateParams:
        return typed_section(cls, section, "evaluate")

    @property
    def max_k(self) -> int:
        """The deepest cutoff any metric or curve reads: how far every system ranks."""
        return max([parse_metric(name)[1] for name in self.metrics] + list(self.curve_ks))
