"""README "Adding a catalog", executed: a catalog in a foreign format (a TSV inside a zip, text ratings, text
dates, no item table) added by one params block, taken to a published, queried snapshot by
`dvc repro publish@boutique` in a copy of this repository, with none of the bundled catalogs' stages run
and the user's file intact after `dvc repro --force`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CATALOG = "boutique"
OWN_STAGES = {f"{stage}@{CATALOG}" for stage in
              ("ingest", "pairs", "train", "select", "quantize", "embed", "index", "fusion", "evaluate", "publish")}


def walkthrough(name: str) -> str:
    """The fenced block right after `<!-- walkthrough:<name> -->` in README.md."""
    match = re.search(rf"<!-- walkthrough:{name} -->\n```\w*\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert match, f"README.md has no walkthrough:{name} block"
    return match.group(1)


def commands() -> list[str]:
    return [line.split("  #")[0].strip() for line in walkthrough("commands").splitlines() if line.strip()]


def sh(repo: Path, command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, shell=True, cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A copy of this repository as a new user has it after `make setup`: the code, dvc.yaml, params.yaml with
    the README's block added, the fetched base model (its dvc.lock entry too), and nothing built."""
    repo = tmp_path_factory.mktemp("repo")
    for name in ("dvc.yaml", ".dvcignore", "pipelines", "serving", "tests/onboarding_fixture.py", ".dvc/config"):
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    shutil.copytree(ROOT / "models" / "base", repo / "models" / "base")
    (repo / "data").mkdir()
    (repo / "data" / "fetched").symlink_to(ROOT / "data" / "fetched")  # what tests/onboarding_fixture.py reads
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    (repo / "dvc.lock").write_text(yaml.safe_dump({"schema": lock["schema"],
                                                   "stages": {"fetch_models": lock["stages"]["fetch_models"]}}))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["catalogs"] |= yaml.safe_load(walkthrough("params"))["catalogs"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    sh(repo, "dvc commit --force fetch_models")  # into this copy's cache, as `dvc repro fetch_models` leaves it
    return repo


@pytest.fixture(scope="module")
def walked(repo) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every command of the README walkthrough, in order, each exiting 0."""
    return {command: sh(repo, command) for command in commands()}


def test_the_walkthrough_takes_the_new_catalog_to_a_queried_snapshot(repo, walked):
    steps = list(walked)
    assert [s.split()[0] for s in steps] == ["python", "semrec", "dvc", "semrec"]
    check, repro, query = (walked[s].stdout for s in steps[1:])
    assert "boutique interactions: raw 1,000 -> read 1,000" in check and check.rstrip().endswith("verdict: ok")
    assert ran(repro) == OWN_STAGES, "only the new catalog's stages run (the base model is already fetched)"
    hits = [line for line in query.splitlines() if re.match(r"\s*\d+\. ", line)]
    assert len(hits) == 5 and all("[" in hit for hit in hits), query
    select = yaml.safe_load((repo / "reports" / CATALOG / "select.json").read_text())
    assert select["chosen"] == "base" and select["base_only"] is True
    latest = (repo / "published" / CATALOG / "LATEST").read_text().strip()
    assert (repo / "published" / CATALOG / latest / "manifest.json").is_file()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(lock) == OWN_STAGES | {"fetch_models"}
    assert not any(name.endswith(("@movies", "@fashion")) for name in lock)


def test_a_dry_run_lists_only_the_catalogs_own_stages_and_its_fetch(repo, walked):
    listed = ran(sh(repo, f"dvc repro --dry --force publish@{CATALOG}").stdout)
    assert listed == OWN_STAGES | {"fetch_models"}


def test_the_users_file_survives_a_forced_rebuild(repo, walked):
    source = repo / yaml.safe_load(walkthrough("params"))["catalogs"][CATALOG]["source"]
    before = sha256(source)
    forced = sh(repo, f"dvc repro --force --downstream ingest@{CATALOG}")
    assert ran(forced.stdout) == OWN_STAGES
    assert sha256(source) == before


def test_no_stage_output_overlaps_a_catalogs_source():
    """Nothing a user owns is a stage output: no out of any stage (bundled or README) is, holds or lies in a source."""
    from dvc.repo import Repo

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    sources = {Path(block["source"]) for block in params["catalogs"].values()}
    sources.add(Path(yaml.safe_load(walkthrough("params"))["catalogs"][CATALOG]["source"]))
    with Repo(str(ROOT)) as dvc:
        outs = {Path(out.def_path) for stage in dvc.index.stages for out in stage.outs}
    fetched = Path("data/fetched")  # the bundled sources are fetch_data's output, never a user's folder
    for source in sources - {fetched}:
        clashes = [out for out in outs if out == source or out in source.parents or source in out.parents]
        assert not clashes, f"{source} overlaps stage outputs {clashes}"
    assert not any(out in (Path("data"), Path("data/sources")) for out in outs)
