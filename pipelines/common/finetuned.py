"""The train stage's output folder: a fine-tuned sentence-transformers model, or, for a catalog whose
`train.enabled` is false, only a note saying so (select then ships the base model: "base only")."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.common.atomic import atomic_dir

NOT_TRAINED = "not_trained.json"


def write_not_trained(out: Path, reason: str) -> None:
    with atomic_dir(out) as tmp:
        (tmp / NOT_TRAINED).write_text(json.dumps({"trained": False, "reason": reason}) + "\n", encoding="utf-8")


def is_trained(folder: Path) -> bool:
    """Whether `folder` holds a fine-tuned model (not the note of a catalog trained with train.enabled false)."""
    return not (folder / NOT_TRAINED).is_file()
