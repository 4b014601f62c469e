"""Build the keyword/gazetteer baseline's data (`gazetteer.json`, read by `serving.gazetteer.Gazetteer`).

Surface forms come from the catalog (titles, directors, cast, writers) and the movie knowledge
graph's vocabulary (genre surfaces, moods, themes). Titles and names made only of everyday words
("Up", "Heat", an actor credited as "You") would fire on ordinary requests, so they are left out.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pipelines.movies.kg import GENRE_SURFACES, MOODS, THEME_PATTERNS, Movie
from serving.conversation.gazetteer import normalise

# Tried in order; the first match decides. A request that matches none is `recommend` when it names
# an entity, else `chitchat`.
INTENT_RULES: list[tuple[str, str]] = [
    ("recommend", r"\b(recommend|suggest|similar|something|anything|in the mood|looking for|show me|fan of|"
                  r"should i watch|in the vein|more like|movies? (directed|starring|about|with)|"
                  r"films? (by|with|involving|about|from|in which)|the movie where|best)\b"),
    ("trivia", r"\b(who (directed|wrote|stars)|when did|what year|what genre|how long is|how old|"
               r"true story|won an oscar|first movie|where was)\b"),
    ("help", r"\b(password|account|subscription|billing|payment|log in|login|charged|crash\w*|load|"
             r"download|subtitles|sound|plan|profile|watchlist|email)\b"),
    ("recommend", r"\b(movies?|films?|watch)\b"),
]

COMMON_WORDS = frozenset(
    "a an the it up us me her him them she he we you i go now heat big fallen salt trick dolls home "
    "friends love crash run ray signs taken split traffic up push rush hi hello hey yo thanks good "
    "night best help free".split())


def build(movies: list[Movie]) -> dict[str, Any]:
    surfaces: dict[str, dict[str, str]] = {"titles": {}, "genres": {}, "people": {}, "themes": {}}
    title_items: dict[str, list[str]] = defaultdict(list)
    for m in movies:
        title_items[m.title].append(m.item_id)
        for field, names in (("titles", (m.title,)), ("people", m.people)):
            for name in names:
                key = normalise(name)
                if key and not set(key.split()) <= COMMON_WORDS:
                    surfaces[field].setdefault(key, name)
    for genre, forms in GENRE_SURFACES.items():
        for form in (genre, *forms):
            surfaces["genres"][normalise(form)] = genre
    for theme in (*MOODS, *THEME_PATTERNS):
        surfaces["themes"][normalise(theme)] = theme
    return {"surfaces": surfaces, "intent_rules": INTENT_RULES, "title_items": dict(title_items)}
