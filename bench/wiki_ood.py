"""An out-of-domain probe in the BEIR layout, from bundled real text: Wikipedia sentences -> their film.

    python bench/wiki_ood.py --out /tmp/wiki_ood
    semrec evaluate --beir /tmp/wiki_ood --snapshot published --catalog movies --out bench/results/wiki_ood \
        --base-model models/base/all-MiniLM-L6-v2 --finetuned models/movies/finetuned --selected models/movies/selected

The fetched Wikipedia summaries (data/fetched) cover more films than the movie catalog keeps. For every film NOT
in the catalog (its summary is no item's description, so no encoder trained here saw it), one seeded
sentence of its summary that does not name the film becomes a query, and the corpus is every summary
(titled), the query sentence cut out of its own. Real prose about unseen films: a stand-in, run here, for
held-out benchmarks of the same shape (critic snippets -> plot summaries), which it does not replace.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import pyarrow.parquet as pq

SENTENCE = re.compile(r"(?<=[.!?])\s+")


def build(summaries: dict[str, str], catalog_descriptions: set[str], seed: int, min_words: int = 8,
          max_words: int = 45) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(corpus rows, query rows); query i is about corpus row `queries[i]["_id"]`."""
    rng = random.Random(seed)
    corpus, queries = [], []
    for number, (key, text) in enumerate(sorted(summaries.items())):
        text, title = text.strip(), key.split(" (")[0]
        seen = text[:200] in catalog_descriptions
        fit = [s for s in SENTENCE.split(text)[1:]
               if min_words <= len(s.split()) <= max_words and title.lower() not in s.lower()]
        doc_id = f"d{number}"
        if fit and not seen:
            sentence = rng.choice(fit)
            text = " ".join(text.replace(sentence, "").split())
            queries.append({"_id": f"q{len(queries)}", "text": sentence, "doc": doc_id})
        corpus.append({"_id": doc_id, "title": title, "text": text})
    return corpus, queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summaries", type=Path, default=Path("data/fetched/wikipedia_movie_summaries.json"))
    parser.add_argument("--items", type=Path, default=Path("data/movies/ingest/items.parquet"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    summaries = json.loads(args.summaries.read_text(encoding="utf-8"))
    descriptions = {d.strip()[:200] for d in pq.read_table(args.items, columns=["description"])["description"]
                    .to_pylist() if d}
    corpus, queries = build(summaries, descriptions, args.seed)
    (args.out / "qrels").mkdir(parents=True, exist_ok=True)
    with (args.out / "corpus.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in corpus)
    with (args.out / "queries.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps({"_id": q["_id"], "text": q["text"]}, ensure_ascii=False) + "\n" for q in queries)
    with (args.out / "qrels" / "test.tsv").open("w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{q['_id']}\t{q['doc']}\t1\n" for q in queries)
    print(f"{len(queries)} queries over {len(corpus)} documents -> {args.out}")


if __name__ == "__main__":
    main()
