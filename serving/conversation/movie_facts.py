"""Facts read off a movie's metadata fields: its people and its decade.

Shared by the explanations `ask` writes and the pipeline's movie knowledge graph, so both read
"who made it" the same way.
"""

from __future__ import annotations

_NAME_SUFFIXES = {"Jr.", "Sr.", "Jr", "Sr", "II", "III"}


def split_names(value: object) -> tuple[str, ...]:
    """People from a metadata field: a list, or 'A, B, Jr., C' text (a suffix joins the name before it)."""
    if value is None:
        return ()
    parts = [str(p) for p in value] if isinstance(value, list) else str(value).split(",")
    names: list[str] = []
    for part in (p.strip() for p in parts):
        if not part or part.upper() == "N/A":
            continue
        if part in _NAME_SUFFIXES and names:
            names[-1] = f"{names[-1]} {part}"
        else:
            names.append(part)
    return tuple(dict.fromkeys(names))


def decade(year: int | None) -> str | None:
    return f"{year // 10 * 10}s" if year else None
