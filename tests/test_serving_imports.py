"""serving/ stays thin: it answers queries with no pipeline code and no heavy framework installed.

The subprocess hides the forbidden packages, as a serving-only install (`pip install semrec`, no
extras) would not have them: any import of one fails the run. Hiding beats merely checking
sys.modules because pyarrow imports pandas opportunistically whenever pandas happens to be installed.
"""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("pipelines", "torch", "transformers", "sentence_transformers", "apache_beam", "polars", "pandas",
             "dask", "distributed")

HIDE = """
import json, sys

class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden: not in a serving-only install)")

FORBIDDEN = set(json.loads(sys.argv[3]))
sys.meta_path.insert(0, Hide())
"""

SCRIPT = HIDE + """
from fastapi.testclient import TestClient
from serving.cli import main
from serving.http import create_app
from serving.reader import Reader
reader = Reader.open(sys.argv[1], "fashion", cache_dir=sys.argv[2])
client = TestClient(create_app(reader))
body = {"text": "red dress", "k": 2, "mode": "hybrid", "filters": {"creator": "Alba", "categories": ["Dresses"]}}
assert client.post("/search", json=body).json()["items"][0]["item_id"] == "i01"
assert len(reader.more_like("i01", k=2, filters={"year_min": 2000, "price_max": 500})) == 2
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_serving_answers_queries_with_no_pipeline_or_heavy_framework(published_root, tmp_path):
    run = subprocess.run([sys.executable, "-c", SCRIPT, published_root, str(tmp_path / "cache"), json.dumps(FORBIDDEN)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = set(json.loads(run.stdout.splitlines()[-1]))
    assert {"serving", "faiss", "onnxruntime", "bm25s", "fastapi"} <= loaded  # the check sees real imports
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))


READER_ONLY = HIDE + """
from pipelines.cli import main
assert main(["query", "red dress", "--root", sys.argv[1], "--catalog", "fashion", "--cache", sys.argv[2]]) == 0
assert main(["serve", "--catalog", "fashion"]) == 2  # one line naming the `http` extra
"""


def test_the_base_install_queries_without_the_http_extra(published_root, tmp_path):
    hidden = [*FORBIDDEN[1:], "fastapi", "starlette", "uvicorn", "pydantic"]  # `pipelines.cli` is the entry point
    run = subprocess.run([sys.executable, "-c", READER_ONLY, published_root, str(tmp_path / "cache"),
                          json.dumps(hidden)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[i01]" in run.stdout and "pip install 'semrec[http]'" in run.stderr
