"""guard-set stage: one catalog's validation set, copied beside another catalog's pairs for select's guard.

    semrec guard-set --pairs data/fashion/pairs --out data/movies/pairs/guard/fashion

select's out-of-domain guard checks a candidate encoder on the validation pairs of the other catalogs
listed in params `select.guard`. dvc.yaml copies each listed catalog's validation.parquet and
documents.parquet into every listed catalog's `pairs/guard/<name>/`, so a catalog's select depends
only on its own folders, and a catalog not listed depends on no other catalog at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.common.atomic import atomic_dir

GUARD_DIR = "guard"  # under a catalog's pairs folder: <catalog>/<files>
GUARD_FILES = ("validation.parquet", "documents.parquet")  # what pipelines.retrieval.validation.Validation.load reads


def guard_sets(pairs: Path, catalog: str) -> dict[str, Path]:
    """The guard sets beside `catalog`'s pairs folder, by guarding catalog, without `catalog`'s own."""
    return {path.name: path for path in sorted((pairs / GUARD_DIR).glob("*"))
            if path.is_dir() and path.name != catalog}


def copy_guard_set(pairs: Path, out: Path) -> None:
    with atomic_dir(out) as tmp:
        for name in GUARD_FILES:
            (tmp / name).write_bytes((pairs / name).read_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec guard-set", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", required=True, type=Path, help="the guarding catalog's pairs folder")
    parser.add_argument("--out", required=True, type=Path, help="<guarded catalog's pairs>/guard/<guarding catalog>")
    args = parser.parse_args(argv)
    copy_guard_set(args.pairs, args.out)
    print(f"guard set {args.pairs} -> {args.out}")
    return 0
