"""cross_catalog stage: an out-of-domain guard we can run without external data.

Each catalog's selected encoder ranks the OTHER catalog's primary test queries over that catalog's
documents (FP32, exact search), against the untouched base model there: fine-tuning for one catalog
must not have made the encoder worse on real text it never saw. The base model's rankings are read back
from the other catalog's evaluate run (`runs/<set>.zero_shot.trec` with its qrels and queries), so only
the selected encoder is encoded here. Report: the paired bootstrap CI of selected minus base per metric.

    semrec cross-catalog --check movies models/movies/selected fashion data/fashion/pairs reports/fashion/runs \
        --check fashion models/fashion/selected movies data/movies/pairs reports/movies/runs \
        --out reports/cross_catalog.json
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines.common.atomic import write_json
from pipelines.common.bootstrap import BootstrapParams, paired_difference, resample_weights
from pipelines.common.metrics import parse_metric, per_query
from pipelines.common.params import load_section, typed_section
from pipelines.common.queries import QuerySet, Rankings
from pipelines.common.schemas import DOCUMENTS, conform
from pipelines.evaluation.report import cell, write_text
from pipelines.evaluation.scores import flat_interval
from pipelines.retrieval.encode import encode, load_model
from pipelines.retrieval.exact import exact_index


@dataclass(frozen=True)
class CrossCatalogParams:
    """params `cross_catalog`."""
    metrics: tuple[str, ...]
    bootstrap: BootstrapParams
    batch_size: int

    def __post_init__(self) -> None:
        for name in self.metrics:
            parse_metric(name)

    @classmethod
    def from_section(cls, section: object) -> CrossCatalogParams:
        return typed_section(cls, section, "cross_catalog")


def read_run(path: Path, qids: Sequence[str]) -> Rankings:
    """A TREC run (`qid Q0 doc rank score tag`) as rankings in the order of `qids`, best first."""
    rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if len(parts) != 6:
            raise ValueError(f"{path}:{number}: expected 6 fields (qid Q0 doc rank score tag), got {len(parts)}")
        rows[parts[0]].append((int(parts[3]), parts[2]))
    return [[doc for _, doc in sorted(rows.get(qid, []))] for qid in qids]


def read_queries(runs: Path, name: str) -> tuple[list[str], QuerySet]:
    """The query ids and QuerySet that evaluate wrote for set `name` (`<name>.queries.tsv`, `<name>.qrels`)."""
    lines = (runs / f"{name}.queries.tsv").read_text(encoding="utf-8").splitlines()
    texts = dict(line.split("\t", 1) for line in lines)
    relevance: dict[str, dict[str, float]] = defaultdict(dict)
    for line in (runs / f"{name}.qrels").read_text(encoding="utf-8").splitlines():
        qid, _, doc, gain = line.split()
        relevance[qid][doc] = float(gain)
    qids = list(texts)
    return qids, QuerySet([texts[q] for q in qids], [relevance[q] for q in qids], [set() for _ in qids],
                          ["test"] * len(qids))


def guard(encoder: Path, documents: Path, runs: Path, name: str, params: CrossCatalogParams) -> dict[str, Any]:
    """Selected encoder (`encoder`) vs the base model's evaluate run on another catalog's query set."""
    qids, queries = read_queries(runs, name)
    docs = conform(pq.read_table(documents), DOCUMENTS, str(documents))
    model = load_model(encoder)
    index = exact_index(docs["item_id"].to_pylist(), encode(model, docs["document"].to_pylist(), params.batch_size))
    names = list(params.metrics)
    k = max(parse_metric(metric)[1] for metric in names)
    selected = index.search(encode(model, queries.texts, params.batch_size), k)
    base = read_run(runs / f"{name}.zero_shot.trec", qids)
    scores = {system: per_query(ranked, queries.relevance, names) for system, ranked in
              (("selected", selected), ("zero_shot", base))}
    weights = resample_weights(len(qids), params.bootstrap.resamples, params.bootstrap.seed)
    out: dict[str, Any] = {"queries": len(qids)}
    for metric in names:
        diff = paired_difference(scores["selected"][metric], scores["zero_shot"][metric], weights,
                                 params.bootstrap.confidence)
        out |= {f"selected_{metric}": float(scores["selected"][metric].mean()),
                f"zero_shot_{metric}": float(scores["zero_shot"][metric].mean())}
        out |= {f"difference_{key}": value for key, value in flat_interval(metric, diff).items()}
    out["not_worse"] = all(out[f"difference_{metric}_ci_high"] >= 0 for metric in names)
    return out


def markdown(report: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> str:
    lines = ["# Cross-catalog guard: each catalog's selected encoder on the other catalog's test set", "",
             "Selected minus the untouched base model, paired bootstrap CI; `not worse` holds when no CI lies "
             "wholly below 0.", "", "| encoder of | tested on | queries | " + " | ".join(names) + " | not worse |",
             "|---|---|---|" + "---|" * len(names) + "---|"]
    for key, own in report.items():
        source, target = key.split("_on_")
        diffs = {n: own[f"difference_{n}"] for n in names} | {
            f"{n}_ci_low": own[f"difference_{n}_ci_low"] for n in names} | {
            f"{n}_ci_high": own[f"difference_{n}_ci_high"] for n in names}
        lines.append(f"| {source} | {target} | {own['queries']} | "
                     + " | ".join(cell(diffs, n, signed=True) for n in names) + f" | {own['not_worse']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec cross-catalog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", nargs=5, action="append", required=True,
                        metavar=("CATALOG", "ENCODER", "OTHER", "OTHER_PAIRS", "OTHER_RUNS"),
                        help="CATALOG's selected ENCODER on catalog OTHER: its pairs folder (documents.parquet) and "
                             "its evaluate runs/ folder; repeat for each direction")
    parser.add_argument("--set", default="test", help="the query set of the other catalog's evaluate (default test)")
    parser.add_argument("--out", required=True, type=Path, help="cross_catalog.json (and .md beside it)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = CrossCatalogParams.from_section(load_section("cross_catalog", args.params))
    report = {}
    for catalog, encoder, other, pairs_dir, runs in args.check:
        report[f"{catalog}_on_{other}"] = guard(Path(encoder), Path(pairs_dir) / "documents.parquet", Path(runs),
                                                args.set, params)
    write_json(report, args.out)
    write_text(markdown(report, params.metrics), args.out.with_suffix(".md"))
    print({key: own["not_worse"] for key, own in report.items()})
    return 0
