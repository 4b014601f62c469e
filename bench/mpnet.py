"""MiniLM or MPNet: what all-mpnet-base-v2's quality costs in latency, size and CPU time, measured on one catalog.

    semrec fetch --group mpnet --out models/base        # once: the pinned MPNet folder
    nice -n 19 python bench/mpnet.py [--steps 50] [--pairs data/fashion/pairs] [--work models/bench]

Side by side in one run, on the fashion test queries (the paper's protocol: a whole review -> its item)
and their hard form (`test_hard`: the title, else the first words): all-MiniLM-L6-v2 and all-mpnet-base-v2,
each zero-shot and fine-tuned by the project's own train stage (params.yaml `train` with only `base_model`
and `max_steps` replaced: the same recipe and steps for both; 50 by default, where fashion's fine-tune peaked
in the pipeline, one validation scoring at params' `eval_steps` 50). Each is scored over every document by exact
cosine search (`dense`) and dense fused with BM25 by reciprocal rank fusion (`fused`), with the code train
and select score with (pipelines.retrieval.validation); Recall@10 and MRR@10 carry percentile bootstrap CIs
and the paired difference against MiniLM fine-tuned (evaluate.bootstrap's resamples). Each fine-tuned model
then goes through pipelines.quantize (MPNet keeps its FFN output MatMuls FP32, `quantize.keep_fp32`): its
INT8/FP32 cosine and whether the stage's parity gate would pass, file sizes, batch-1 one-thread query
latency p50/p99 of the ONNX encoders (bench/encoder.py's warm block-wise loop, short test_hard queries) and
INT8 docs/s at batch 32 on one thread. Training cost is the train stage's wall and CPU (process) time per
step run (early stopping may end a run before `--steps`), its validation scorings included.

Every expensive step is cached under --work (a fine-tuned folder then its train.json, an encoder folder
then its quantize.json, embeddings as .npy): a rerun after a crash resumes at the step that did not finish.
Delete --work to measure again. Writes bench/results/mpnet.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

# bench/encoder.py: the same warm timing loop
from encoder import BLOCK, Embed, cpu, latencies, throughput
from measure import write_results

from pipelines.common.atomic import atomic_path, write_json
from pipelines.common.bootstrap import interval, paired_difference, resample_weights
from pipelines.common.metrics import per_query
from pipelines.common.params import load_section
from pipelines.quantize import ParityError, QuantizeParams, check, quantize
from pipelines.retrieval.encode import encode, load_model
from pipelines.retrieval.exact import exact_index
from pipelines.retrieval.systems import Corpus, bm25_rankings
from pipelines.retrieval.validation import SYSTEMS, Validation
from pipelines.train import TrainParams, train
from serving.encoder import Encoder, Variant

METRICS = ("recall@10", "mrr@10")
SETS = ("test", "test_hard")
REFERENCE = "minilm_finetuned"


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def cached_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def fine_tune(base: Path, pairs: Path, steps: int, folder: Path, params_path: Path) -> dict[str, Any]:
    """`pipelines.train` on `base` for `steps` steps into `folder/finetuned`; its timings in `folder/train.json`."""
    done = cached_json(folder / "train.json")
    if done is not None:
        if done["steps"] != steps:
            raise SystemExit(f"{folder} was fine-tuned for {done['steps']} steps, not {steps}: delete it to retrain")
        return done
    params = replace(TrainParams.from_section(load_section("train", params_path)), base_model=base, max_steps=steps)
    before, wall, cpu_time = loadavg(), time.perf_counter(), time.process_time()
    log = train(pairs, params, folder / "finetuned")
    wall, cpu_time = time.perf_counter() - wall, time.process_time() - cpu_time
    run = log.rows[-1][0]  # optimizer steps taken: fewer than `steps` where early stopping ended the run
    result = {"base_model": str(base), "steps": steps, "steps_run": run, "batch_size": params.batch_size,
              "max_seq_length": params.max_seq_length, "learning_rate": params.learning_rate,
              "eval_steps": params.eval_steps, "checkpoint_metric": params.checkpoint_metric,
              "validation_scorings": len(log.validation), "validation": log.validation,
              "kept_step": max(log.validation, key=lambda row: row[params.checkpoint_metric])["step"],
              "loss_first": log.rows[0][1], "loss_last": log.rows[-1][1],
              "wall_s": wall, "cpu_s": cpu_time, "wall_s_per_step": wall / run, "cpu_s_per_step": cpu_time / run,
              "loadavg_before": before, "loadavg_after": loadavg(),
              "params": {key: str(value) if isinstance(value, Path) else value for key, value in asdict(params).items()}}
    write_json(result, folder / "train.json")
    return result


def quantize_model(folder: Path, pairs: Path, params_path: Path) -> dict[str, Any]:
    """`pipelines.quantize` of `folder/finetuned` into `folder/onnx`, with the gate recorded rather than enforced:
    the bench measures the encoder either way and says whether the stage would have shipped it."""
    done = cached_json(folder / "quantize.json")
    if done is not None:
        return done
    params = QuantizeParams.from_section(load_section("quantize", params_path))
    report = quantize(folder / "finetuned", pairs, folder / "onnx",
                      replace(params, min_int8_cosine=0.0, min_fp32_cosine=0.0))
    try:
        check(report, params)
        report["parity_gate"] = "passed"
    except ParityError as error:
        report["parity_gate"] = str(error)
    write_json(report, folder / "quantize.json")
    return report


def embeddings(model_dir: Path, texts: Mapping[str, list[str]], cache: Path, batch_size: int) -> dict[str, np.ndarray]:
    """{name: L2-normalised FP32 vectors of texts[name]}, each cached as `cache/<name>.npy`."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {name: np.load(cache / f"{name}.npy") for name in texts if (cache / f"{name}.npy").exists()}
    out = {name: vectors for name, vectors in out.items() if len(vectors) == len(texts[name])}
    if len(out) < len(texts):
        model = load_model(model_dir)
        for name in texts.keys() - out.keys():
            out[name] = encode(model, texts[name], batch_size)
            with atomic_path(cache / f"{name}.npy") as tmp, tmp.open("wb") as f:
                np.save(f, out[name])
    return out


def quality(models: Mapping[str, Path], sets: Mapping[str, Validation], work: Path,
            boot: Mapping[str, Any], batch_size: int) -> dict[str, Any]:
    """Per set: each (system, mode)'s metrics with CIs and its paired difference against MiniLM fine-tuned."""
    any_set = next(iter(sets.values()))
    texts = {"documents": any_set.documents} | {name: v.queries.texts for name, v in sets.items()}
    ranked: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in sets}
    for system, folder in models.items():
        vectors = embeddings(folder, texts, work / "vectors" / system, batch_size)
        for name, v in sets.items():
            for mode, rows in v.rankings(exact_index(v.doc_ids, vectors["documents"]), vectors[name]).items():
                ranked[name][f"{system}/{mode}"] = rows
    out: dict[str, Any] = {}
    for name, v in sets.items():
        relevance = v.queries.relevance
        bm25 = v.queries.rankings(bm25_rankings(Corpus(v.doc_ids, v.documents), v.queries.texts,
                                                v.queries.fetch_k(10)), 10)
        systems = {"bm25/lexical": bm25} | ranked[name]
        scores = {key: per_query(rows, relevance, METRICS) for key, rows in systems.items()}
        weights = resample_weights(len(relevance), int(boot["resamples"]), int(boot["seed"]))
        confidence = float(boot["confidence"])
        own: dict[str, Any] = {"queries": len(relevance)}
        for key, values in scores.items():
            mode = key.split("/")[1]
            reference = scores.get(f"{REFERENCE}/{mode}", scores[f"{REFERENCE}/dense"])
            own[key] = {metric: interval(values[metric], weights, confidence).to_json()
                        | {"vs_" + REFERENCE: paired_difference(values[metric], reference[metric], weights,
                                                                confidence).to_json()}
                        for metric in METRICS}
        out[name] = own
    return out


def onnx_embed(folder: Path, variant: Variant) -> Embed:
    encoder = Encoder.load(folder, variant, threads=1)
    return lambda texts, batch_size: encoder.encode(texts, batch_size=batch_size)


def speed(encoders: Mapping[str, Path], queries: list[str], documents: list[str]) -> list[dict[str, Any]]:
    """Batch-1 one-thread latency of each encoder's FP32 and INT8 ONNX graphs (warm, in turns), INT8 docs/s."""
    embeds = {(f"{name}/{variant}", 1): onnx_embed(folder, variant)
              for name, folder in encoders.items() for variant in ("int8", "fp32")}
    times = latencies(embeds, queries, warmup=3, block=BLOCK)
    return [{"encoder": key, "p50_ms": float(np.percentile(times[(key, 1)], 50)),
             "p99_ms": float(np.percentile(times[(key, 1)], 99)),
             "docs_per_s": throughput(embed, documents) if key.endswith("int8") else None}
            for (key, _), embed in embeds.items()]


def cell(found: Mapping[str, float], signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(found['mean'])} [{fmt.format(found['ci_low'])}, {fmt.format(found['ci_high'])}]"


LABELS = {"bm25": "BM25", "minilm_zero_shot": "MiniLM zero-shot", "minilm_finetuned": "MiniLM fine-tuned",
          "mpnet_zero_shot": "MPNet zero-shot", "mpnet_finetuned": "MPNet fine-tuned"}


def markdown(result: Mapping[str, Any]) -> str:
    steps, training = result["steps"], result["training"]
    run = "; ".join(f"{LABELS[name + '_finetuned'].split()[0]}: {t.get('steps_run', steps)} run, step {t['kept_step']} kept"
                    for name, t in training.items())
    lines = [f"# MiniLM or MPNet on {result['pairs']}", "",
             (f"Fine-tuned: `pipelines.train` with params.yaml `train`, at most {steps} steps of "
             f"{training['minilm']['batch_size']} at seq {training['minilm']['max_seq_length']} "
             f"for both ({run}), best checkpoint by validation `{training['minilm']['checkpoint_metric']}`. "
             f"Zero-shot: the base folders as shipped (MiniLM max_seq 256, MPNet 384). FP32, every document "
             f"scored; `fused` = dense RRF (k 60) with BM25. 95% bootstrap CIs; the last columns are the "
             f"paired difference against MiniLM fine-tuned in the same mode (BM25: against its dense mode)."),
             (f"CPU: {result['cpu']['model']}, {result['cpu_count']} cores, shared; load average "
              f"{result['loadavg_before']} -> {result['loadavg_after']}."), ""]
    for name in SETS:
        own = result["quality"][name]
        lines += [f"## {name} ({own['queries']} queries)", "",
                  "| system | mode | Recall@10 | MRR@10 | Recall@10 vs MiniLM ft | MRR@10 vs MiniLM ft |",
                  "|---|---|---|---|---|---|"]
        for key, row in own.items():
            if key == "queries":
                continue
            system, mode = key.split("/")
            diff = [cell(row[m][f"vs_{REFERENCE}"], signed=True) if system != REFERENCE else "-" for m in METRICS]
            lines.append(f"| {LABELS[system]} | {mode} | {cell(row['recall@10'])} | {cell(row['mrr@10'])} | "
                         f"{diff[0]} | {diff[1]} |")
        lines.append("")
    lines += ["## Cost", "",
              ("| model | train s/step wall (CPU) | INT8/FP32 cosine mean (min) | parity gate | FP32 / INT8 MB | "
               "INT8 p50 / p99 ms | ONNX FP32 p50 ms | INT8 docs/s |"), "|---|---|---|---|---|---|---|---|"]
    speeds = {row["encoder"]: row for row in result["speed"]}
    for model in ("minilm", "mpnet"):
        t, q = result["training"][model], result["quantize"][model]
        int8, fp32 = speeds[f"{model}/int8"], speeds[f"{model}/fp32"]
        lines.append(f"| {model} | {t['wall_s_per_step']:.1f} ({t['cpu_s_per_step']:.1f}) | "
                     f"{q['int8_vs_fp32_cosine_mean']:.4f} ({q['int8_vs_fp32_cosine_min']:.4f}) | "
                     f"{'passed' if q['parity_gate'] == 'passed' else 'FAILED'} | "
                     f"{q['model_fp32_bytes'] / 1e6:.0f} / {q['model_int8_bytes'] / 1e6:.0f} | "
                     f"{int8['p50_ms']:.2f} / {int8['p99_ms']:.2f} | {fp32['p50_ms']:.2f} | {int8['docs_per_s']:.1f} |")
    ratio = result["ratios"]
    lines += ["", (f"MPNet / MiniLM: INT8 p50 latency {ratio['int8_p50']:.1f}x, INT8 file {ratio['int8_size']:.1f}x, "
                   f"docs/s {ratio['docs_per_s']:.2f}x, training CPU per step {ratio['train_cpu_per_step']:.1f}x."),
              (f"Latency: batch 1, one thread, {result['latency_queries']} test_hard queries, warm, encoders taking "
               f"turns in blocks of {BLOCK}; docs/s: {result['throughput_documents']} documents at batch 32, one "
               f"thread. Training time includes each run's {result['training']['minilm']['validation_scorings']} "
               f"validation scorings. Wall time is the shared machine's (load average over training: "
               + "; ".join(f"{LABELS[name + '_finetuned'].split()[0]} {t['loadavg_before']} -> {t['loadavg_after']}"
                           for name, t in training.items())
               + "): compare CPU seconds."), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, default=Path("data/fashion/pairs"))
    parser.add_argument("--minilm", type=Path, default=Path("models/base/all-MiniLM-L6-v2"))
    parser.add_argument("--mpnet", type=Path, default=Path("models/base/all-mpnet-base-v2"))
    parser.add_argument("--steps", type=int, default=50, help="fine-tuning steps (at most), the same for both models")
    parser.add_argument("--work", type=Path, default=Path("models/bench"), help="cache of every expensive step")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    bases = {"minilm": args.minilm, "mpnet": args.mpnet}
    missing = [str(path) for path in bases.values() if not (path / "modules.json").exists()]
    if missing:
        raise SystemExit(f"no sentence-transformers folder at {missing}: semrec fetch --group mpnet --out models/base")
    evaluate = load_section("evaluate", args.params)
    before = loadavg()
    training = {name: fine_tune(base, args.pairs, args.steps, args.work / name, args.params)
                for name, base in bases.items()}
    quantized = {name: quantize_model(args.work / name, args.pairs, args.params) for name in bases}
    sets = {name: Validation.load(args.pairs, name) for name in SETS}
    models = {f"{name}_{kind}": folder for name, base in bases.items()
              for kind, folder in (("zero_shot", base), ("finetuned", args.work / name / "finetuned"))}
    scores = quality(models, sets, args.work, evaluate["bootstrap"], int(evaluate["batch_size"]))
    queries, documents = sets["test_hard"].queries.texts[:300], sets["test"].documents[:512]
    speeds = speed({name: args.work / name / "onnx" for name in bases}, queries, documents)
    p = {row["encoder"]: row for row in speeds}
    result = {"pairs": str(args.pairs), "steps": args.steps, "systems": list(models), "modes": list(SYSTEMS),
              "cpu": cpu(), "cpu_count": os.cpu_count(), "loadavg_before": before, "loadavg_after": loadavg(),
              "training": training, "quantize": quantized, "quality": scores, "speed": speeds,
              "latency_queries": len(queries), "throughput_documents": len(documents),
              "ratios": {"int8_p50": p["mpnet/int8"]["p50_ms"] / p["minilm/int8"]["p50_ms"],
                         "int8_size": quantized["mpnet"]["model_int8_bytes"] / quantized["minilm"]["model_int8_bytes"],
                         "docs_per_s": p["mpnet/int8"]["docs_per_s"] / p["minilm/int8"]["docs_per_s"],
                         "train_cpu_per_step": training["mpnet"]["cpu_s_per_step"]
                         / training["minilm"]["cpu_s_per_step"]}}
    write_results(args.out, "mpnet", result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
