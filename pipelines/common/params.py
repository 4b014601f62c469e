"""Read one stage's section of `params.yaml` (each stage reads only its own section)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


def load_section(section: str, path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return `params.yaml[section]`, failing with the file and section named when it is absent."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        params = yaml.safe_load(f) or {}
    if section not in params:
        raise KeyError(f"{path}: no section {section!r} (have: {', '.join(sorted(params))})")
    return params[section]
