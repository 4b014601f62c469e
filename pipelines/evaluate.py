"""evaluate stage: every system on every held-out query set, with paired bootstrap CIs against what ships.

Systems, all ranking the same documents for the same queries (pipelines.retrieval.systems):
  popularity     (a catalog whose fusion report tuned a prior) the most liked items, the same for every query
  bm25           BM25 (serving.bm25) over the documents
  bm25_prior     (with a prior) BM25 blended with the popularity prior at its best weight on validation
                 (fusion.json `bm25_prior`): the lexical baseline given what the shipped system is given
  zero_shot      the untouched base model, FP32, exact search
  finetuned      the train stage's best checkpoint, FP32, exact search (absent when train.enabled is false)
  selected       the select stage's choice, FP32, exact search (the same rankings as zero_shot or finetuned
                 when it is one of them)
  shipped_dense  the selected encoder as shipped: INT8 ONNX + sharded HNSW at its tuned efSearch
  shipped        what `Reader.search` answers by default: shipped_dense fused with BM25 (and the prior) as the
                 fusion stage chose
Every metric is a mean with a percentile bootstrap CI over queries; `paired_vs_shipped` holds shipped minus
each system with a paired CI (same resamples: a CI excluding 0 is a significant difference). A set mixing
query kinds is also scored kind by kind. Each (set, system) ranking is written as a TREC run beside the
set's qrels (`runs/`), so trec_eval or ranx can re-check every number.

    semrec evaluate --documents D --test test=T --test test_hard=H --base-model B --finetuned F --selected S \\
        --index I --encoder E --fusion reports/fashion/fusion.json --select reports/fashion/select.json \\
        --popularity data/fashion/pairs/popularity.parquet --out reports/fashion
    semrec evaluate --beir DIR --snapshot published --catalog movies --out reports/beir/NAME \\
        [--base-model B --finetuned F --selected S]
    semrec evaluate --beir DIR --encoder models/movies/onnx --fusion reports/movies/fusion.json --out ...

A BEIR-layout dataset (pipelines.evaluation.beir) is embedded, indexed and searched through the same reader
code: `--snapshot` scores exactly what that snapshot serves (its encoder, fusion method and weight).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.common.params import load_section
from pipelines.evaluation.beir import beir_inputs, load_beir, local_path, served_path
from pipelines.evaluation.inputs import ModelFolders, catalog_inputs
from pipelines.evaluation.params import EvaluateParams
from pipelines.evaluation.report import write_evaluation
from pipelines.evaluation.run import Evaluation, Inputs, evaluate
from pipelines.retrieval.fusion_report import FusionReport
from serving.fusion import Fusion

log = logging.getLogger(__name__)


def named_path(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=PATH (NAME a word such as test_hard), not {value!r}")
    return name, Path(path)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semrec evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for metrics.json, report.md, plots, runs/")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    models = parser.add_argument_group("model systems (FP32 sentence-transformers folders, exact search)")
    models.add_argument("--base-model", type=Path, help="the untouched base model (zero_shot)")
    models.add_argument("--finetuned", type=Path, help="the train stage's output (finetuned)")
    models.add_argument("--selected", type=Path, help="the select stage's output (selected)")
    catalog = parser.add_argument_group("catalog evaluation")
    catalog.add_argument("--documents", type=Path, help="pairs stage documents.parquet")
    catalog.add_argument("--test", type=named_path, action="append", metavar="NAME=PAIRS",
                         help="a held-out pairs file and its name in the report (repeat: test=..., test_hard=...)")
    catalog.add_argument("--index", type=Path, help="index stage folder")
    catalog.add_argument("--encoder", type=Path, help="ONNX encoder folder (quantize stage)")
    catalog.add_argument("--fusion", type=Path, help="the fusion stage's fusion.json (the shipped fusion)")
    catalog.add_argument("--select", type=Path, help="the select stage's select.json (candidates and choice)")
    catalog.add_argument("--popularity", type=Path, help="the pairs stage's popularity.parquet: the prior's counts, "
                         "for a catalog whose fusion.json tuned one")
    beir = parser.add_argument_group("BEIR evaluation")
    beir.add_argument("--beir", type=Path, help="BEIR-layout dataset folder")
    beir.add_argument("--split", default="test", help="qrels/<split>.tsv")
    beir.add_argument("--snapshot", help="published store URL: score what its --catalog snapshot serves")
    beir.add_argument("--catalog", help="the catalog of --snapshot")
    return parser


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.beir:
        if not (args.encoder or args.snapshot):
            parser.error("--beir needs --snapshot URL --catalog C, or --encoder (and --fusion)")
        if args.snapshot and not args.catalog:
            parser.error("--snapshot needs --catalog")
        return
    needed = ["documents", "test", "index", "encoder", "fusion"]
    if missing := [f"--{name.replace('_', '-')}" for name in needed if getattr(args, name) is None]:
        parser.error(f"catalog evaluation needs {' '.join(missing)} (or --beir)")


def run_beir(args: argparse.Namespace, params: EvaluateParams, models: ModelFolders) -> tuple[Evaluation, Inputs]:
    if args.snapshot:
        path = served_path(args.snapshot, args.catalog, params)
    else:
        path = local_path(args.encoder, FusionReport.read(args.fusion).fusion if args.fusion else Fusion("dense"),
                          params)
    with beir_inputs(load_beir(args.beir, args.split), path, models, params, str(args.beir)) as inputs:
        return evaluate(inputs, params), inputs


def main(argv: list[str] | None = None) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    check_arguments(arguments, args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = EvaluateParams.from_section(load_section("evaluate", args.params))
    models = ModelFolders(args.base_model, args.finetuned, args.selected)
    if args.beir:
        evaluation, inputs = run_beir(args, params, models)
    else:
        inputs = catalog_inputs(args.documents, args.test, args.index, args.encoder, args.fusion, args.popularity,
                                args.select, models, params)
        evaluation = evaluate(inputs, params)
    write_evaluation(evaluation, inputs.sets, params, args.out)
    metric = params.metrics[0]
    for name in inputs.sets:
        log.info("%s %s: %s", name, metric, {system: round(evaluation.metrics[name][system][metric], 4)
                                             for system in evaluation.systems})
    return 0
