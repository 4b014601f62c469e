"""Entity-constrained decoding: every entity string the intent model writes is a known name.

A small LM copying a name out of a message slips a letter ("Embbeth Davidtz") or swaps in a
likelier word ("The Favourite Baker Boys"). While the decoder is inside a string of an entity list
(`"titles":["...`), `EntityConstraint.allows` accepts a next token only if the string still leads
to a catalog name of that field, and closes it only on a whole name. Outside entity strings
(the intent, keys, punctuation) every token is allowed. The names come from the gazetteer's data,
so the constraint follows the catalog a snapshot was built from.

    >>> c = EntityConstraint({"titles": ["Heat", "Heathers"]})
    >>> c.allows('{"intent":"recommend","titles":["Hea', 'th')
    True
    >>> c.allows('{"intent":"recommend","titles":["Hea', 'p')
    False
    >>> c.allows('{"intent":"recommend","titles":["Heat', '"]}')
    True
"""

from __future__ import annotations

import bisect
import copy
import json
import re
from collections.abc import Iterable, Iterator, Mapping

_OPEN_LIST = re.compile(r'"(\w+)"\s*:\s*\[')


def json_content(value: str) -> str:
    """`value` as it appears between the quotes of a JSON string."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def closing_quote(text: str) -> int | None:
    """Index of the first unescaped double quote in `text`, None if there is none."""
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return None


def entity_lists(text: str) -> Iterator[tuple[str, list[str], str | None]]:
    """(field, closed strings, open string or None) for each `"field":[...` list in `text`, JSON-escaped."""
    for match in _OPEN_LIST.finditer(text):
        rest, strings = text[match.end():], []
        while True:
            start = rest.find('"')
            if start < 0 or "]" in rest[:start]:
                yield match.group(1), strings, None  # the list closed, or the text ends between strings
                break
            end = closing_quote(rest[start + 1:])
            if end is None:
                yield match.group(1), strings, rest[start + 1:]
                break
            strings.append(rest[start + 1:start + 1 + end])
            rest = rest[start + 1 + end + 1:]


def open_entity(text: str) -> tuple[str, str] | None:
    """(field, partial string) when `text` ends inside a string of an entity list, else None."""
    last: tuple[str, str] | None = None
    for field, _, partial in entity_lists(text):
        last = (field, partial) if partial is not None else None
    return last


class EntityConstraint:
    """Allowed continuations of a partial JSON answer, given the known names of each entity field."""

    def __init__(self, names: Mapping[str, Iterable[str]]):
        self.names = {field: sorted({json_content(v) for v in values}) for field, values in names.items()}
        self.whole = {field: set(values) for field, values in self.names.items()}

    def restricted(self, mentioned: Mapping[str, Iterable[str]]) -> EntityConstraint:
        """This constraint with each field that has mentioned names narrowed to those names."""
        narrowed = copy.copy(self)
        for field, values in mentioned.items():
            escaped = sorted({json_content(v) for v in values} & self.whole.get(field, set()))
            if escaped:
                narrowed.names = {**narrowed.names, field: escaped}
                narrowed.whole = {**narrowed.whole, field: set(escaped)}
        return narrowed

    def leads_to_name(self, field: str, partial: str) -> bool:
        names = self.names[field]
        i = bisect.bisect_left(names, partial)
        return i < len(names) and names[i].startswith(partial)

    def completions(self, field: str, partial: str, limit: int) -> list[str] | None:
        """What may follow `partial` to end a name of `field` (None when more than `limit` names do)."""
        names = self.names[field]
        start = bisect.bisect_left(names, partial)
        end = bisect.bisect_left(names, partial + "\U0010ffff")
        if end - start > limit:
            return None
        return [name[len(partial):] for name in names[start:end]]

    def valid(self, answer: str) -> bool:
        """Every closed entity string is a whole name of its field; an open one leads to one."""
        for field, strings, partial in entity_lists(answer):
            if field not in self.names:
                continue
            if any(s not in self.whole[field] for s in strings):
                return False
            if partial is not None and not self.leads_to_name(field, partial):
                return False
        return True

    def allows(self, text: str, token_text: str) -> bool:
        """Whether `token_text` may follow `text` (the answer so far)."""
        return self.valid(text + token_text)


class TokenTexts:
    """The text of every token id, searchable by prefix: which tokens can continue a name."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.ids: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            self.ids.setdefault(text, []).append(i)
        self.sorted = sorted(self.ids)

    def continuing(self, remainders: Iterable[str]) -> set[int]:
        """Tokens that spell the start of a remainder, or all of it and then its closing quote."""
        found: set[int] = set()
        for rest in remainders:
            for k in range(1, len(rest) + 1):
                found.update(self.ids.get(rest[:k], ()))
            closing = rest + '"'
            i = bisect.bisect_left(self.sorted, closing)
            while i < len(self.sorted) and self.sorted[i].startswith(closing):
                found.update(self.ids[self.sorted[i]])
                i += 1
        return found
