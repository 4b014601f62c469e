"""`semrec` as a new user meets it: every expected failure is one line on stderr saying what to do, with its exit
code (2 usage, 3 not found, 4 verification failed, 5 storage or credentials); --version and --log-level."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from pipelines.cli import main as semrec
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
