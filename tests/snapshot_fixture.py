"""A tiny, hand-checkable catalog and the publish inputs built from it (for publish/reader/HTTP tests).

The encoder is a real ONNX graph in the reader's format (token ids -> embedding lookup -> masked mean
-> L2 norm) over a word-level tokenizer where every known word has its own axis. So an item's vector
is the normalised mean of its words' axes and the dense ranking can be worked out by hand. Words not
in the encoder vocabulary (the product codes "sku77", "sku88") map to [UNK] = the zero vector: only
BM25 sees them, which is what makes fused results differ from dense ones. The fusion stage runs on the
fixture's validation pairs, as in the pipeline, and its choice goes into the published manifest.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from onnx import TensorProto, helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from pipelines import fusion, publish
from pipelines.movies.gazetteer import build as build_gazetteer
from pipelines.movies.kg import movies_from_items
from serving.conversation.ask import CHOICE_FILE, GAZETTEER_FILE
from serving.encoder import Encoder
from serving.shards import plan_shards, write_manifest, write_shard
from serving.store import Store

WORDS = ["red", "blue", "green", "black", "white", "summer", "evening", "wool", "denim", "linen", "silk",
         "dress", "sweater", "jeans", "jacket", "shirt", "trousers", "blouse", "coat", "warm", "party"]
VOCAB = {"[PAD]": 0, "[UNK]": 1, **{word: i + 2 for i, word in enumerate(WORDS)}}
DIM = len(WORDS)
PUBLISH_PARAMS = {"publish": {"enabled": True, "root": "unused", "keep": 3, "gc_grace_hours": 24,
                              "gate": {"metric": ["gate", "recall@10"], "tolerance": 0.02}},
                  "fusion": {"metric": "recall@1", "weights": [0.5], "rrf_k": 60, "link_weights": [],
                             "prior_weights": []}}

# item_id, title, creator, categories, year, price, document (the text embedded and BM25-indexed)
ITEMS = [
    ("i01", "Red summer dress", "Alba", ["Dresses"], 2019, 80.0, "red summer dress"),
    ("i02", "Red evening dress", "Bruno", ["Dresses"], 2020, 150.0, "red evening dress party"),
    ("i03", "Blue summer dress", "Alba", ["Dresses"], 2021, 60.0, "blue summer dress"),
    ("i04", "Red wool sweater", "Alba", ["Knits"], 2018, 90.0, "red wool sweater warm"),
    ("i05", "Blue denim jeans", "Carla", ["Jeans"], 2020, 70.0, "blue denim jeans"),
    ("i06", "Black denim jacket", "Carla", ["Jackets"], 2017, 120.0, "black denim jacket"),
    ("i07", "Green linen shirt", "Bruno", ["Tops"], 2022, 45.0, "green linen shirt"),
    ("i08", "White linen trousers", "Bruno", ["Pants"], 2021, 65.0, "white linen trousers sku77"),
    ("i09", "Red silk blouse", "Dora", ["Tops", "Party"], 2016, 95.0, "red silk blouse party"),
    ("i10", "Black wool coat", "Dora", ["Jackets"], 2015, 200.0, "black wool coat warm"),
    ("i11", "Red denim jacket", "Carla", ["Jackets"], None, None, "red denim jacket coat sku88"),
    ("i12", "White summer dress", "Dora", ["Dresses"], 2023, 110.0, "white summer dress"),
]


def write_encoder(folder: Path) -> Path:
    """model_int8.onnx + tokenizer.json + encoder.json, loadable by serving.encoder.Encoder."""
    folder.mkdir(parents=True, exist_ok=True)
    table = np.zeros((len(VOCAB), DIM), dtype=np.float32)
    table[2:] = np.eye(DIM, dtype=np.float32)  # [PAD] and [UNK] stay zero
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["tokens"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "last"], ["mask3"]),
        helper.make_node("Mul", ["tokens", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "seq"], ["summed"], keepdims=0),
        helper.make_node("ReduceL2", ["summed"], ["norm"], axes=[-1], keepdims=1),  # axes: attribute until opset 18
        helper.make_node("Max", ["norm", "eps"], ["safe"]),
        helper.make_node("Div", ["summed", "safe"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny-encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", DIM])],
        initializer=[helper.make_tensor("table", TensorProto.FLOAT, table.shape, table.ravel()),
                     helper.make_tensor("last", TensorProto.INT64, [1], [-1]),
                     helper.make_tensor("seq", TensorProto.INT64, [1], [1]),
                     helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-12])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, folder / "model_int8.onnx")
    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "encoder.json").write_text(json.dumps(
        {"model": "tiny-fixture", "dim": DIM, "max_seq_length": 32, "pooling": "mean"}))
    return folder


def items_table(items: list[tuple] = ITEMS) -> pa.Table:
    columns = list(zip(*items))
    return pa.table({"item_id": columns[0], "title": columns[1], "creator": columns[2],
                     "categories": pa.array(columns[3], pa.list_(pa.string())),
                     "year": pa.array(columns[4], pa.int32()), "price": pa.array(columns[5], pa.float64()),
                     "url": [None] * len(items), "attributes": ['{"material": "cloth"}'] * len(items),
                     "document": columns[6]})


def write_inputs(root: Path, recall_at_10: float = 0.5, n_shards: int = 2,
                 rows: list[tuple] = ITEMS) -> dict[str, Path]:
    """Everything `semrec publish` reads, for the tiny catalog (or other rows shaped like ITEMS): paths by CLI
    option name."""
    encoder = write_encoder(root / "encoder")
    items = items_table(rows)
    vectors = Encoder.load(encoder).encode(items.column("document").to_pylist())
    index = root / "index"
    entries = [write_shard(index, s, vectors[rows], items.take(rows), m=8, ef_construction=40)
               for s, rows in enumerate(plan_shards(items.column("item_id").to_pylist(), n_shards))]
    write_manifest(index, entries, dim=DIM, ef_search=16, m=8, ef_construction=40)
    pq.write_table(items.select(["item_id", "document"]), root / "documents.parquet")
    np.save(root / "embeddings.npy", vectors, allow_pickle=False)
    # validation pairs: the product code is only visible to BM25, so hybrid must win on these
    pq.write_table(pa.table({"query_id": ["q1", "q2", "q3", "q4"],
                             "query": ["linen sku77", "jacket sku88", "warm coat", "White linen trousers"],
                             "item_id": ["i08", "i11", "i10", "i08"], "kind": ["review"] * 4}),
                   root / "validation.parquet")
    metrics = root / "metrics.json"
    metrics.write_text(json.dumps({"gate": {"recall@10": recall_at_10}}))
    (root / "params.yaml").write_text(yaml.safe_dump(PUBLISH_PARAMS))
    assert fusion.main(["--index", str(index), "--encoder", str(encoder), "--documents",
                        str(root / "documents.parquet"), "--validation", str(root / "validation.parquet"),
                        "--out", str(root / "fusion.json"), "--params", str(root / "params.yaml")]) == 0
    return {"index": index, "encoder": encoder, "documents": root / "documents.parquet",
            "embeddings": root / "embeddings.npy", "validation": root / "validation.parquet", "metrics": metrics,
            "fusion": root / "fusion.json", "params": root / "params.yaml"}


def write_intent(folder: Path) -> Path:
    """An intent folder for the tiny catalog that ships the gazetteer extractor only (no LM): the
    pipeline's own gazetteer built over the items (creators read as directors, categories as genres)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = build_gazetteer(movies_from_items(items_table()))
    (folder / GAZETTEER_FILE).write_text(json.dumps(spec), encoding="utf-8")
    (folder / CHOICE_FILE).write_text(json.dumps({"extractor": "gazetteer"}), encoding="utf-8")
    return folder


def publish_tiny(inputs: dict[str, Path], root: str, *extra: str, recall: float | None = None,
                 catalog: str = "fashion") -> int:
    """`semrec publish` of the tiny catalog into `root` (gate metric `recall`); returns the exit code."""
    metrics = inputs["metrics"]
    if recall is not None:
        metrics = metrics.with_name(f"metrics-{recall}.json")
        metrics.write_text(json.dumps({"gate": {"recall@10": recall}}))
    argv = ["--catalog", catalog, "--root", root, "--params", str(inputs["params"]), "--metrics", str(metrics)]
    for name in ("index", "encoder", "documents", "fusion"):
        argv += [f"--{name}", str(inputs[name])]
    return publish.main(argv + list(extra))


def publish_concurrently(inputs: dict[str, Path], root: str, recalls: tuple[float, float], monkeypatch) -> list[int]:
    """Two publishes in threads, both past their read of LATEST before either swaps; their exit codes."""
    both_read_latest = threading.Barrier(2, timeout=60)
    swap = Store.swap_latest

    def swap_after_both_read(self, *args):
        both_read_latest.wait()  # each publisher has gated against the same live pointer by now
        return swap(self, *args)

    monkeypatch.setattr(Store, "swap_latest", swap_after_both_read)
    codes: list[int] = []
    threads = [threading.Thread(target=lambda r=r: codes.append(publish_tiny(inputs, root, recall=r)))
               for r in recalls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes
