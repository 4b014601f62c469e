"""`semrec` as a new user meets it: every expected failure is one line on stderr saying what to do, with its exit
code (2 usage, 3 not found, 4 verification failed, 5 storage or credentials); --version and --log-level."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.cli import main as semrec
from serving.manifest import FileEntry
from serving.store import Store


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def query(root: str, tmp_path, *args: str) -> list[str]:
    return ["query", "--root", root, "--cache", str(tmp_path / "cache"), *args]


def test_an_unknown_item_is_not_found(published_root, tmp_path, capsys):
    assert semrec(query(published_root, tmp_path, "--catalog", "fashion", "--similar-to", "nope")) == 3
    err = one_line_error(capsys)
    assert err.startswith("semrec query: no item 'nope' in fashion snapshot") and "[brackets]" in err


def test_an_unpublished_catalog_is_not_found(published_root, tmp_path, capsys):
    assert semrec(query(published_root, tmp_path, "red dress", "--catalog", "shoes")) == 3
    err = one_line_error(capsys)
    assert "shoes: nothing published yet" in err and "publish first" in err
    assert semrec(query(published_root, tmp_path, "red dress", "--catalog", "fashion",
                        "--version", "20990101T000000000000Z-ffffffff")) == 3
    assert "no such snapshot" in one_line_error(capsys)


def test_a_snapshot_that_does_not_verify_is_exit_4(published_root, tmp_path, capsys):
    root = tmp_path / "published"
    subprocess.run(["cp", "-r", published_root, str(root)], check=True)
    store = Store(str(root))
    store.put_bytes(b"{}", "fashion", store.latest("fashion").snapshot_id, "encoder", "tokenizer.json")
    assert semrec(query(str(root), tmp_path, "red dress", "--catalog", "fashion")) == 4
    err = one_line_error(capsys)
    assert "encoder/tokenizer.json" in err and "rollback" in err


def test_missing_s3_credentials_are_exit_5(s3_root, tmp_path, monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert semrec(query(s3_root, tmp_path, "red dress", "--catalog", "fashion")) == 5
    err = one_line_error(capsys)
    assert "Unable to locate credentials" in err and "AWS_ACCESS_KEY_ID" in err


@pytest.mark.parametrize("args, complaint", [
    (["red", "--catalog", "../etc"], "not a safe name"),
    (["red", "--catalog", "fashion", "--filter", "colour=red"], "unknown filter field"),
    (["red", "--catalog", "fashion", "--filter", "price_min=nan"], "price_min"),
    (["red", "--catalog", "fashion", "--k", "0"], "--k"),
])
def test_usage_errors_are_exit_2(published_root, tmp_path, capsys, args, complaint):
    with pytest.raises(SystemExit) as done:
        semrec(query(published_root, tmp_path, *args))
    assert done.value.code == 2 and complaint in capsys.readouterr().err


def test_publish_failures_are_one_line_too(published_root, tmp_path, capsys):
    args = ["publish", "rollback", "--to", "20990101T000000000000Z-ffffffff", "--catalog", "fashion", "--root",
            published_root, "--params", str(tmp_path / "none.yaml")]
    assert semrec(args) == 3  # the params file is missing: named, not a traceback
    assert "none.yaml" in one_line_error(capsys)


def test_version_and_log_level(capsys):
    assert semrec(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("semrec ") and out.split()[1][0].isdigit()
    with pytest.raises(SystemExit) as done:
        semrec(["--log-level", "chatty", "query"])
    assert done.value.code == 2 and "--log-level" in capsys.readouterr().err


def test_log_level_reaches_the_command(published_root, tmp_path, capsys):
    root_logger = logging.getLogger()
    level = root_logger.level
    try:
        assert semrec(["--log-level", "warning", *query(published_root, tmp_path, "red", "--catalog", "fashion")]) == 0
        assert root_logger.level == logging.WARNING
        assert semrec(["--log-level=debug", *query(published_root, tmp_path, "red", "--catalog", "fashion")]) == 0
        assert root_logger.level == logging.DEBUG
    finally:
        root_logger.setLevel(level)


def test_the_installed_command_prints_one_line_and_no_traceback(published_root, tmp_path):
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", *query(published_root, tmp_path, "--catalog",
                          "fashion", "--similar-to", "nope")], capture_output=True, text=True)
    assert run.returncode == 3 and len(run.stderr.strip().splitlines()) == 1, run.stderr


# --- bytes, request limits, exit codes that send the operator the right way, one error boundary -------------

def copy_of(published_root: str, tmp_path) -> str:
    root = tmp_path / "published"
    subprocess.run(["cp", "-r", published_root, str(root)], check=True)
    return str(root)


def usage_error(capsys, args: list[str]) -> str:
    """argparse's usage error: exit 2, and its complaint, never a traceback."""
    with pytest.raises(SystemExit) as done:
        semrec(args)
    err = capsys.readouterr().err
    assert done.value.code == 2 and "Traceback" not in err, err
    return err


def serve(root: str, tmp_path) -> list[str]:
    return ["serve", "--root", root, "--catalog", "fashion", "--cache", str(tmp_path / "cache"), "--poll-seconds", "0"]


@pytest.mark.parametrize("pointer", [b"\xff\xfe\n", b"LATEST\n"])
def test_a_latest_that_names_no_snapshot_is_exit_4_and_a_rollback_repairs_it(published_root, fixture_inputs,
                                                                            tmp_path, capsys, monkeypatch, pointer):
    root = copy_of(published_root, tmp_path)
    live = Store(root).latest("fashion").snapshot_id
    (Path(root) / "fashion" / "LATEST").write_bytes(pointer)
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: pytest.fail("served a broken LATEST"))
    for command in (query(root, tmp_path, "red", "--catalog", "fashion"), serve(root, tmp_path)):
        assert semrec(command) == 4, command
        err = one_line_error(capsys)
        assert "LATEST" in err and "publish rollback" in err
    assert semrec(["publish", "rollback", "--to", live, "--catalog", "fashion", "--root", root,
                   "--params", str(fixture_inputs["params"])]) == 0
    assert semrec(query(root, tmp_path, "red", "--catalog", "fashion")) == 0


def test_a_latest_that_is_a_folder_is_exit_4(published_root, tmp_path, capsys):
    root = copy_of(published_root, tmp_path)
    latest = Path(root) / "fashion" / "LATEST"
    latest.unlink()
    latest.mkdir()
    assert semrec(query(root, tmp_path, "red", "--catalog", "fashion")) == 4
    assert "LATEST" in one_line_error(capsys)


def test_root_or_cache_that_is_a_file_is_a_usage_error(published_root, tmp_path, capsys):
    file = tmp_path / "a-file"
    file.write_text("x")
    err = usage_error(capsys, ["query", "--root", str(file), "--cache", str(tmp_path / "cache"), "red",
                               "--catalog", "fashion"])
    assert "--root" in err and "not a folder" in err
    err = usage_error(capsys, ["query", "--root", published_root, "--cache", str(file), "red", "--catalog", "fashion"])
    assert "--cache" in err and "not a folder" in err


def test_latest_is_not_a_snapshot_id(published_root, fixture_inputs, tmp_path, capsys):
    err = usage_error(capsys, query(published_root, tmp_path, "red", "--catalog", "fashion", "--version", "LATEST"))
    assert "--version" in err and "latest" in err
    err = usage_error(capsys, ["publish", "rollback", "--to", "LATEST", "--catalog", "fashion", "--root",
                               published_root, "--params", str(fixture_inputs["params"])])
    assert "--to" in err


def test_ask_refuses_an_unsafe_catalog_name_as_usage(ask_root, tmp_path, capsys):
    err = usage_error(capsys, ["ask", "something warm", "--catalog", "../x", "--root", ask_root,
                               "--cache", str(tmp_path / "cache")])
    assert "not a safe name" in err


@pytest.mark.parametrize("command", ["query", "ask"])
@pytest.mark.parametrize("args, complaint", [
    (["red \udcff dress"], "UTF-8"),  # what a shell passes for $'red \xff dress'
    (["red", "--k", "1000000000"], "--k"),  # tried to allocate 14.9 GiB
    (["red", "--k", "101"], "--k"),
    (["red", "--k", "0"], "--k"),
    (["x" * 120_000], "2000 characters"),
    (["  "], "2000 characters"),
])
def test_query_and_ask_apply_the_http_request_limits(published_root, ask_root, tmp_path, capsys, command, args,
                                                     complaint):
    root, catalog = (published_root, "fashion") if command == "query" else (ask_root, "movies")
    err = usage_error(capsys, [command, *args, "--catalog", catalog, "--root", root, "--cache", str(tmp_path / "c")])
    assert complaint in err


def test_a_forged_snapshot_whose_manifest_vouches_for_a_corrupt_model_is_exit_4(published_root, tmp_path, capsys):
    from serving.manifest import MANIFEST_NAME, Manifest, sha256_file

    root = copy_of(published_root, tmp_path)
    store = Store(root)
    snapshot = Path(root) / "fashion" / store.latest("fashion").snapshot_id
    model = snapshot / "encoder" / "model_int8.onnx"
    model.write_bytes(b"not an onnx graph" * 64)
    manifest = Manifest.from_json((snapshot / MANIFEST_NAME).read_bytes())
    files = tuple(FileEntry(e.path, model.stat().st_size, sha256_file(model)) if e.path == "encoder/model_int8.onnx"
                  else e for e in manifest.files)
    (snapshot / MANIFEST_NAME).write_bytes(replace(manifest, files=files).to_json())  # re-hashed: self-consistent
    assert semrec(query(root, tmp_path, "red", "--catalog", "fashion")) == 4
    err = one_line_error(capsys)
    assert snapshot.name in err and "rollback" in err


UNEXPECTED = """
import sys
import serving.reader

def broken(*args, **kwargs):
    raise RuntimeError("the reader tripped")

serving.reader.Reader.open = broken
from pipelines.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("log_level", [[], ["--log-level", "debug"]])
def test_an_unexpected_failure_is_one_line_that_points_to_the_traceback(published_root, tmp_path, log_level):
    run = subprocess.run([sys.executable, "-c", UNEXPECTED, *log_level, *query(published_root, tmp_path, "red",
                          "--catalog", "fashion")], capture_output=True, text=True)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1 and "RuntimeError: the reader tripped" in last and "--log-level debug" in last
    if log_level:
        assert "Traceback" in run.stderr
    else:
        assert run.stderr.strip() == last, run.stderr
