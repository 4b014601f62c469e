"""The package layout's rules: arrows run one way (no import cycle, type-only imports included; `serving`
never imports `pipelines`), and every `semrec` command answers `--help`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pipelines.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "serving")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every project module `path` imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    known = set(files)
    # a package's __init__ is not an edge target worth a cycle: importing pipelines.x runs pipelines/__init__
    return {name: imports_of(path, known) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node], _ = 2, path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_a_type_only_cycle():
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_anywhere():
    assert find_cycle(import_graph()) is None


def test_serving_never_imports_pipelines():
    offenders = {module: sorted(t for t in targets if t.startswith("pipelines"))
                 for module, targets in import_graph().items() if module.startswith("serving")}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_the_three_wings_exist():
    for folder, modules in {
        "pipelines/ingest": ["stage", "polars_engine", "beam_engine", "beam_transforms", "filters", "langid"],
        "pipelines/movies": ["describe", "synth", "intent", "intent_onnx", "kg", "gazetteer", "llm", "ask_eval"],
        "serving/conversation": ["ask", "constrained", "extraction", "gazetteer", "intent_model", "movie_facts"],
    }.items():
        assert all((ROOT / folder / f"{name}.py").is_file() for name in modules), folder


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_answers_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert f"semrec {command}" in capsys.readouterr().out


# floors, bottom up: serving < pipelines.common < pipelines.retrieval < the stages (and their rooms) < the CLI
LOWER_FLOORS = {"pipelines.common": ("pipelines.common",),
                "pipelines.retrieval": ("pipelines.common", "pipelines.retrieval")}


@pytest.mark.parametrize("floor", sorted(LOWER_FLOORS))
def test_no_import_runs_back_up_from_the_lower_floors(floor):
    allowed = LOWER_FLOORS[floor]
    offenders = {module: sorted(t for t in targets if t.startswith("pipelines") and not t.startswith(allowed))
                 for module, targets in import_graph().items() if module.startswith(floor)}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_only_the_retrieval_wing_encodes_with_a_torch_model_or_fuses():
    """One way to encode (pipelines.retrieval.encode) and one way to fuse (serving.snapshot.fuse_candidates, which
    the reader's Snapshot and the pipeline's exact search both call): nothing else in the code calls them itself."""
    wing = (ROOT / "pipelines" / "retrieval", ROOT / "serving" / "fusion.py", ROOT / "serving" / "snapshot.py")
    calls = re.compile(r"\b(normalize_embeddings=True|fuse\()")
    found = [f"{path.relative_to(ROOT)}: {call}" for folder in ("pipelines", "serving", "bench")
             for path in sorted((ROOT / folder).rglob("*.py"))
             if not any(path == place or place in path.parents for place in wing) and "results" not in path.parts
             for call in calls.findall(path.read_text())]
    assert found == []
