"""The reader installs beside a real service: ranges in pyproject.toml, exact pins in constraints.txt (the lock
`make` uses), Python 3.11-3.13, and the web framework in the `http` extra. CI also installs the base alone in a
fresh venv (.ci/base_install.sh)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(group: str | None = None) -> list[Requirement]:
    raw = PROJECT["dependencies"] if group is None else PROJECT["optional-dependencies"][group]
    return [Requirement(line) for line in raw]


def pins() -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in (ROOT / "constraints.txt").read_text().splitlines()]
    pinned = [Requirement(line) for line in lines if line]
    assert all(len(r.specifier) == 1 and next(iter(r.specifier)).operator == "==" for r in pinned)
    return {canonicalize_name(r.name): next(iter(r.specifier)).version for r in pinned}


def test_python_3_11_to_3_13():
    supported = SpecifierSet(PROJECT["requires-python"])
    assert all(version in supported for version in ("3.11", "3.12", "3.13")) and "3.14" not in supported


def test_every_dependency_is_a_range_up_to_the_next_major_and_the_lock_pins_it_inside():
    locked = pins()
    every = requirements() + [r for group in PROJECT["optional-dependencies"] for r in requirements(group)]
    for requirement in every:
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">=", "<"}, f"{requirement}: want >=tested,<next major"
        upper = next(spec.version for spec in requirement.specifier if spec.operator == "<")
        lower = next(spec.version for spec in requirement.specifier if spec.operator == ">=")
        assert int(upper.split(".")[0]) == int(lower.split(".")[0]) + 1 and upper.count(".") == 0, requirement
        name = canonicalize_name(requirement.name)
        assert name in locked, f"constraints.txt does not pin {name}"
        assert requirement.specifier.contains(locked[name]), f"{name}=={locked[name]} is outside {requirement}"


def test_the_base_install_is_the_reader_without_a_web_framework():
    base = {canonicalize_name(r.name) for r in requirements()}
    assert {"fastapi", "uvicorn"} & base == set()
    assert {"fastapi", "uvicorn"} <= {canonicalize_name(r.name) for r in requirements("http")}
    assert {"torch", "transformers", "apache-beam", "polars", "pandas", "dask", "distributed"} & base == set()
