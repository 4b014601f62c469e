"""Ask a published snapshot a conversational request from the shell (what POST /ask answers).

    semrec ask "something like Heat but funnier" --catalog movies
    semrec ask "a comedy directed by Harold Ramis" --catalog movies --k 5 --json

Bounded like `semrec query` and POST /ask (text length, k). Exit 2 on bad input, 3 when the
snapshot ships no intent/ folder (publish it with --intent).
"""

from __future__ import annotations

import argparse
import json
import sys

from serving.arguments import add_reader_arguments, k_argument, text_argument
from serving.cli import format_hit
from serving.conversation.ask import Answer
from serving.conversation.extraction import FIELDS
from serving.http_ask import answer_json
from serving.limits import MAX_K
from serving.reader import Reader

NO_INTENT = 3


def format_answer(answer: Answer) -> list[str]:
    """The intent and entities read, the message if any, then each suggestion with its explanation."""
    request = answer.request
    read = [f"{name}: {', '.join(getattr(request, name))}" for name in FIELDS if getattr(request, name)]
    lines = [f"# intent: {request.intent}" + "".join(f" | {part}" for part in read)]
    if answer.message:
        lines.append(answer.message)
    for rank, suggestion in enumerate(answer.suggestions, 1):
        lines += [format_hit(rank, suggestion.hit), f"    {suggestion.explanation}"]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semrec ask", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", type=text_argument, help="what the user says")
    parser.add_argument("--k", type=k_argument, default=10, help=f"suggestions, 1 to {MAX_K}")
    add_reader_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the answer as JSON (the POST /ask body)")
    args = parser.parse_args(argv)
    reader = Reader.open(args.root, args.catalog, args.version, args.cache)
    snapshot = reader.snapshot
    if snapshot.conversation is None:
        print(f"semrec ask: snapshot {snapshot.snapshot_id} of {args.catalog} ships no intent/ folder; "
              "publish it with --intent, or use `semrec query`", file=sys.stderr)
        return NO_INTENT
    answer = snapshot.ask(args.text, args.k)
    if args.json:
        json.dump(answer_json(snapshot.snapshot_id, answer), sys.stdout, indent=2)
        print()
    else:
        print(f"# {args.catalog} snapshot {snapshot.snapshot_id}: {args.text}")
        print("\n".join(format_answer(answer)))
    return 0
