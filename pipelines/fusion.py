"""fusion stage: how the snapshot combines dense and BM25, chosen on the validation split.

Candidates: dense alone; the weighted min-max hybrid at every weight of `fusion.weights`; reciprocal rank
fusion with k = `fusion.rrf_k` (Cormack et al. 2009); with --popularity, each of these again blended with
the popularity prior at every weight of `fusion.prior_weights` (serving.prior); and all of these again with
title links at every weight of `fusion.link_weights` (serving.links: a query naming a catalog title also
ranks that item's neighbours). Each ranks the validation queries through the reader's own query path
(pipelines.retrieval.shipped: INT8 encoder, sharded HNSW at its tuned efSearch, BM25 over the documents).
The best by `fusion.metric` wins; a tie keeps the simpler candidate (no links before links, no prior before
a prior; dense, then RRF, then the hybrid by ascending weight). The choice (method, the best hybrid weight,
rrf_k, link_weight, prior_weight) goes to `fusion.json` (pipelines.retrieval.fusion_report), which `publish`
writes into the manifest (so `Reader.search`, `semrec query` and HTTP use it by default) and `evaluate`
scores as the shipped system. With a prior, the report also holds the weight at which BM25 alone gains
most from the same prior (`bm25_prior`): `evaluate`'s fair lexical baseline.

    semrec fusion --index data/fashion/index --encoder models/fashion/onnx \
        --documents data/fashion/pairs/documents.parquet --validation data/fashion/pairs/validation.parquet \
        --popularity data/fashion/pairs/popularity.parquet --out reports/fashion/fusion.json
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.common.metrics import parse_metric, per_query
from pipelines.common.params import load_section, typed_section
from pipelines.common.queries import query_set
from pipelines.common.schemas import DOCUMENTS, PAIRS, conform
from pipelines.retrieval.fusion_report import Bm25Prior, FusionReport
from pipelines.retrieval.shipped import local_snapshot, rankings
from pipelines.retrieval.systems import bm25_prior_rankings
from serving.fusion import Fusion


@dataclass(frozen=True)
class FusionParams:
    """params `fusion`."""
    metric: str  # the choice is the best by this metric on validation, e.g. recall@10
    weights: tuple[float, ...]  # BM25 weights of the min-max hybrid
    rrf_k: int
    link_weights: tuple[float, ...]  # 0 alone: never link
    prior_weights: tuple[float, ...]  # tried only for a catalog with popularity counts

    def __post_init__(self) -> None:
        parse_metric(self.metric)

    @classmethod
    def from_section(cls, section: object) -> FusionParams:
        return typed_section(cls, section, "fusion")


def candidates(weights: Sequence[float], rrf_k: int, link_weights: Sequence[float] = (),
               prior_weights: Sequence[float] = ()) -> list[Fusion]:
    """In tie-break order: dense, RRF, then the hybrid by ascending BM25 weight; then all of them again with
    the prior, by ascending prior weight; then all of those again with links, by ascending link weight."""
    plain = [Fusion("dense"), Fusion("rrf", rrf_k=rrf_k)] + [Fusion("hybrid", float(w)) for w in sorted(weights)]
    unlinked = plain + [replace(f, prior_weight=float(w)) for w in sorted(set(prior_weights) - {0}) for f in plain]
    return unlinked + [replace(f, link_weight=float(w)) for w in sorted(set(link_weights) - {0}) for f in unlinked]


def choose(scores: Mapping[Fusion, float]) -> Fusion:
    """The best-scoring fusion; ties keep the earliest (simplest) candidate."""
    order = list(scores)
    return max(order, key=lambda fusion: (scores[fusion], -order.index(fusion)))


def shipped_fusion(chosen: Fusion, scores: Mapping[Fusion, float]) -> Fusion:
    """The chosen fusion, carrying the best hybrid weight (with its links) too, so `mode="hybrid"` serves the
    tuned weight."""
    hybrids = {fusion: score for fusion, score in scores.items() if fusion.method == "hybrid"
               and (fusion.link_weight, fusion.prior_weight) == (chosen.link_weight, chosen.prior_weight)}
    weight = choose(hybrids).bm25_weight if hybrids else chosen.bm25_weight
    return replace(chosen, bm25_weight=weight)


def tune(index: Path, encoder: Path, documents: Path, validation: Path, params: FusionParams,
         popularity: Path | None = None) -> FusionReport:
    """Score every candidate fusion on the validation queries; return the report with the choice."""
    metric = params.metric
    _, k = parse_metric(metric)
    docs = conform(pq.read_table(documents), DOCUMENTS, str(documents))
    texts = dict(zip(docs["item_id"].to_pylist(), docs["document"].to_pylist()))
    queries = query_set(conform(pq.read_table(validation), PAIRS, str(validation)))
    if not queries.texts:
        raise ValueError(f"{validation}: no validation pairs to choose the fusion on")
    prior_weights = list(params.prior_weights) if popularity else []
    fusions = candidates(params.weights, params.rrf_k, params.link_weights, prior_weights)
    snapshot = local_snapshot(index, encoder, texts, popularity=popularity)

    def score(ranked: list[list[str]]) -> float:
        return float(per_query(queries.rankings(ranked, k), queries.relevance, [metric])[metric].mean())

    ranked = rankings(snapshot, queries.texts, fusions, queries.fetch_k(k))
    scores = {fusion: score(ranked[fusion]) for fusion in fusions}
    bm25_prior = None
    if prior_weights:
        lexical = {w: score(bm25_prior_rankings(snapshot, queries.texts, w, queries.fetch_k(k)))
                   for w in [0.0, *sorted(set(prior_weights) - {0})]}
        best = max(lexical, key=lambda w: (lexical[w], -w))
        bm25_prior = Bm25Prior(best, {f"{w:g}": round(s, 6) for w, s in lexical.items()})
    return FusionReport(shipped_fusion(choose(scores), scores), metric, len(queries.texts),
                        snapshot.index.manifest.ef_search, {f.name(): round(s, 6) for f, s in scores.items()},
                        bm25_prior)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec fusion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, type=Path, help="the index stage's folder")
    parser.add_argument("--encoder", required=True, type=Path, help="the quantize stage's ONNX folder")
    parser.add_argument("--documents", required=True, type=Path, help="documents.parquet (item_id, document)")
    parser.add_argument("--validation", required=True, type=Path, help="the pairs stage's validation.parquet")
    parser.add_argument("--popularity", type=Path,
                        help="the pairs stage's popularity.parquet: also try the popularity prior (serving.prior)")
    parser.add_argument("--out", required=True, type=Path, help="fusion.json: the choice and every candidate's score")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    report = tune(args.index, args.encoder, args.documents, args.validation,
                  FusionParams.from_section(load_section("fusion", args.params)), args.popularity)
    report.write(args.out)
    print(f"fusion: {report.chosen} ({report.metric} {report.validation[report.chosen]:.4f} on "
          f"{report.validation_queries} validation queries; dense {report.validation['dense']:.4f})")
    return 0
