"""Query a published snapshot from the shell.

    semrec query "flowy summer dress" --k 10 --root published --catalog fashion
    semrec query "a tense heist thriller" --catalog movies --filter year_min=1990 --json
    semrec query --similar-to 1078 --catalog fashion
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from serving.arguments import add_reader_arguments, k_argument, text_argument
from serving.cache import VERIFY_MODES
from serving.errors import NotFound
from serving.filters import FilterError, Filters
from serving.hits import Hit
from serving.limits import MAX_K
from serving.reader import Reader
from serving.snapshot import MODES

LIST_FILTERS = {"categories"}


def parse_filters(pairs: list[str]) -> Filters:
    """`field=value` strings to Filters; numbers are parsed, `categories=a,b` is a list."""
    raw: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise FilterError(f"--filter {pair!r}: expected field=value")
        raw[name] = value.split(",") if name in LIST_FILTERS else _number_or_text(value)
    return Filters.parse(raw)


def _number_or_text(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def format_hit(rank: int, hit: Hit) -> str:
    details = ", ".join(str(v) for v in (hit.creator, hit.year, ", ".join(hit.categories or [])) if v)
    return f"{rank:2d}. {hit.score:.3f}  {hit.title} [{hit.item_id}]" + (f"  ({details})" if details else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec query", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", nargs="?", type=text_argument, help="what the user is looking for")
    parser.add_argument("--similar-to", metavar="ITEM_ID", help="items like this one instead of a text query")
    parser.add_argument("--k", type=k_argument, default=10, help=f"results, 1 to {MAX_K}")
    add_reader_arguments(parser)
    parser.add_argument("--verify", choices=VERIFY_MODES, default="size",
                        help="how a snapshot already cached is checked on open (sha256: re-hash every file)")
    parser.add_argument("--mode", choices=MODES, help="dense, hybrid or rrf (default: the snapshot's fusion, chosen "
                        "on validation when it was published)")
    parser.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE",
                        help="creator=..., categories=a,b, year_min=..., year_max=..., price_min=..., price_max=...")
    parser.add_argument("--json", action="store_true", help="print the hits as JSON")
    args = parser.parse_args(argv)
    if (args.text is None) == (args.similar_to is None):
        parser.error("give a query text or --similar-to ITEM_ID (not both)")
    try:
        filters = parse_filters(args.filter)
    except FilterError as err:
        parser.error(str(err))
    reader = Reader.open(args.root, args.catalog, args.version, args.cache, verify=args.verify)
    if args.similar_to is not None:
        try:
            hits = reader.more_like(args.similar_to, args.k, filters)
        except KeyError:
            raise NotFound(f"no item {args.similar_to!r} in {args.catalog} snapshot {reader.manifest.snapshot_id} "
                           "(a text query prints item ids in [brackets])") from None
    else:
        hits = reader.search(args.text, args.k, filters, args.mode)
    if args.json:
        json.dump({"snapshot_id": reader.manifest.snapshot_id, "items": [h.to_dict() for h in hits]}, sys.stdout,
                  indent=2)
        print()
    else:
        print(f"# {args.catalog} snapshot {reader.manifest.snapshot_id}: {args.text or 'like ' + args.similar_to}")
        for rank, hit in enumerate(hits, 1):
            print(format_hit(rank, hit))
    return 0
