"""fusion.json: the fusion stage's choice, which `publish` ships and `evaluate` scores as the shipped system.

Whether the catalog has a popularity prior is read here (`has_prior`), not passed around as a flag: the
fusion stage tuned one exactly when it was given the catalog's popularity counts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.common.atomic import write_json
from serving.errors import UsageError
from serving.fusion import Fusion


@dataclass(frozen=True)
class Bm25Prior:
    """The weight at which BM25 alone gains most from the same prior: evaluate's fair lexical baseline."""
    prior_weight: float
    validation: dict[str, float]  # prior weight ("0.1") -> the fusion metric on validation


@dataclass(frozen=True)
class FusionReport:
    fusion: Fusion  # the choice, carrying the best hybrid weight
    metric: str  # what chose it, e.g. recall@10
    validation_queries: int
    ef_search: int
    validation: dict[str, float]  # every candidate's name -> its metric on validation
    bm25_prior: Bm25Prior | None = None  # None: no prior was tuned (no popularity counts)

    @property
    def chosen(self) -> str:
        return self.fusion.name()

    @property
    def has_prior(self) -> bool:
        return self.bm25_prior is not None

    def check_counts(self, popularity: object | None, source: str) -> None:
        """A stage given the popularity counts must be given them exactly when this report tuned a prior."""
        if self.has_prior and popularity is None:
            raise UsageError(f"{source} tuned the popularity prior ({self.chosen}): pass --popularity")
        if popularity is not None and not self.has_prior:
            raise UsageError(f"{source} tuned no popularity prior: rerun the fusion stage with --popularity")

    def chosen_on(self) -> dict[str, Any]:
        """What the choice was made on, for the snapshot manifest's `extra`."""
        return {"chosen": self.chosen, "metric": self.metric, "validation_queries": self.validation_queries,
                "validation": self.validation}

    def to_json(self) -> dict[str, Any]:
        out = {"fusion": asdict(self.fusion), "chosen": self.chosen, "metric": self.metric,
               "validation_queries": self.validation_queries, "ef_search": self.ef_search,
               "validation": self.validation}
        return out | ({"bm25_prior": asdict(self.bm25_prior)} if self.bm25_prior else {})

    def write(self, path: str | Path) -> None:
        write_json(self.to_json(), path)

    @classmethod
    def read(cls, path: str | Path) -> FusionReport:
        """fusion.json; a UsageError naming the file when it is not a fusion stage report."""
        try:
            report = json.loads(Path(path).read_text(encoding="utf-8"))
            prior = report.get("bm25_prior")
            return cls(Fusion(**report["fusion"]), str(report["metric"]), int(report["validation_queries"]),
                       int(report["ef_search"]), dict(report["validation"]),
                       None if prior is None else Bm25Prior(**prior))
        except (OSError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise UsageError(f"{path}: not a fusion stage report: {type(err).__name__}: {err}") from err
