"""ask from a published snapshot: publish ships intent/ (listed, verified), Reader.ask answers, ask-eval
measures through that reader only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from snapshot_fixture import publish_tiny, write_intent

from pipelines.common.schemas import SYNTH_QUERIES
from pipelines.movies import ask_eval
from serving.manifest import MANIFEST_NAME, Manifest, ManifestError
from serving.reader import Reader
from serving.store import Store

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
CARLA = ["i05", "i06", "i11"]  # every item whose creator is Carla


def test_publish_ships_intent_in_the_manifest_and_the_reader_asks_from_it(fixture_inputs, tmp_path):
    root, report = str(tmp_path / "published"), tmp_path / "publish.json"
    intent = write_intent(tmp_path / "intent")
    assert publish_tiny(fixture_inputs, root, "--intent", str(intent), "--report", str(report), catalog="movies") == 0
    published = json.loads(report.read_text())
    assert published["ask_extractor"] == "gazetteer"
    manifest = Manifest.from_json(Store(root).read("movies", published["snapshot_id"], MANIFEST_NAME))
    assert {"intent/gazetteer.json", "intent/conversation.json"} <= {entry.path for entry in manifest.files}

    answer = Reader.open(root, "movies", cache_dir=tmp_path / "cache").ask("something like Red summer dress", k=3)
    assert answer.request.titles == ("Red summer dress",) and len(answer.suggestions) == 3
    assert "i01" not in [s.hit.item_id for s in answer.suggestions]  # the anchor is not suggested back
    assert all(s.explanation.startswith(f"If you enjoyed Red summer dress, you might like {s.hit.title}")
               for s in answer.suggestions)
    printed = str(answer).splitlines()  # what `print(reader.ask(...))` shows a person
    assert printed[0] == "intent: recommend (titles: Red summer dress)" and len(printed) == 4
    assert printed[1].startswith(f"1. {answer.suggestions[0].hit.title} [") and "you might like" in printed[1]


def test_a_tampered_intent_file_is_refused_like_any_other(ask_root, tmp_path):
    root = tmp_path / "published"
    shutil.copytree(ask_root, root)
    (snapshot,) = Store(str(root)).snapshots("movies")
    gazetteer = root / "movies" / snapshot / "intent" / "gazetteer.json"
    gazetteer.write_text(gazetteer.read_text().replace("Alba", "Albx"))
    with pytest.raises(ManifestError, match=r"intent/gazetteer.json: sha256 .* does not match"):
        Reader.open(str(root), "movies", cache_dir=tmp_path / "cache")


def test_a_snapshot_without_intent_says_so(published_root, tmp_path):
    reader = Reader.open(published_root, "fashion", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="has no intent/ folder"):
        reader.ask("something like Red summer dress")


def test_an_intent_folder_ask_cannot_load_is_refused_before_anything_is_published(fixture_inputs, tmp_path):
    intent = write_intent(tmp_path / "intent")
    (intent / "conversation.json").write_text(json.dumps({"extractor": "model"}))  # but no model.onnx
    root = str(tmp_path / "published")
    with pytest.raises(ValueError, match=r"--intent .*intent: .*the model extractor needs model.onnx"):
        publish_tiny(fixture_inputs, root, "--intent", str(intent), catalog="movies")
    assert Store(root).snapshots("movies") == [] and Store(root).latest("movies") is None


def synth_rows(*rows: tuple[str, str, dict, list[str]]) -> pa.Table:
    fields = {"titles": [], "genres": [], "people": [], "themes": []}
    return pa.Table.from_pylist(
        [{"query_id": f"q{i}", "template": "t", "text": text, "intent": intent, **(fields | entities),
          "targets": targets, "noise": None} for i, (text, intent, entities, targets) in enumerate(rows)],
        schema=SYNTH_QUERIES)


def test_ask_eval_measures_the_published_snapshot_through_the_reader(ask_root, tmp_path):
    synth = tmp_path / "synth"
    synth.mkdir()
    clean = synth_rows(("something by Carla", "recommend", {"people": ["Carla"]}, CARLA),
                       ("hello there", "chitchat", {}, []))  # not a specific request: not scored
    pq.write_table(clean, synth / "test.parquet")
    pq.write_table(synth_rows(("somethin by Carl", "recommend", {"people": ["Carla"]}, CARLA)),
                   synth / "noisy.parquet")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"ask_eval": {"max_targets": 10, "queries": 0}}))
    out = tmp_path / "ask.json"
    assert ask_eval.main(["--root", ask_root, "--synth", str(synth), "--out", str(out), "--params", str(params)]) == 0
    report = json.loads(out.read_text())
    assert report["snapshot"] == Store(ask_root).latest("movies").snapshot_id
    assert report["served_extractor"] == "gazetteer"  # the tiny snapshot ships no intent model
    assert report["clean"]["queries"] == report["noisy"]["queries"] == 1
    assert report["clean"]["recall@10_ask_gazetteer"] == report["clean"]["recall@10_ask_gold_extraction"] == 1.0
    assert "recall@10_ask_model" not in report["clean"]
    # the typos hide Carla and the cue word from the gazetteer (chit-chat: no items); gold routing finds hers
    assert report["noisy"]["recall@10_ask_gold_extraction"] == 1.0
    assert report["noisy"]["recall@10_ask_gazetteer"] == 0.0


def test_ask_eval_refuses_a_snapshot_without_intent(published_root, tmp_path, capsys):
    with pytest.raises(SystemExit):
        ask_eval.main(["--root", published_root, "--catalog", "fashion", "--synth", str(tmp_path),
                       "--out", str(tmp_path / "ask.json"), "--params", str(PARAMS)])
    assert "ships no intent/ folder" in capsys.readouterr().err
