"""The movie knowledge graph read off ITEMS rows: people, genres and themes per movie, and their surface forms.

One place for the vocabulary that `synth` writes queries with, the gazetteer matches, `describe`
grounds its prompts in, and the intent labels use (canonical names: a genre as the catalog spells
it, a person as the metadata spells them, a theme as a key of MOODS / THEME_PATTERNS).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa

from serving.conversation.movie_facts import split_names

# Canonical genre (MovieLens / OMDb spelling) -> how people say it before "movie" ("a sci-fi movie").
GENRE_SURFACES: dict[str, tuple[str, ...]] = {
    "Action": ("action",),
    "Adventure": ("adventure",),
    "Animation": ("animated", "animation", "cartoon"),
    "Biography": ("biopic", "biographical"),
    "Children": ("kids", "children's"),
    "Comedy": ("comedy",),
    "Crime": ("crime",),
    "Documentary": ("documentary",),
    "Drama": ("drama",),
    "Family": ("family",),
    "Fantasy": ("fantasy",),
    "Film-Noir": ("film noir", "noir"),
    "History": ("historical", "history"),
    "Horror": ("horror",),
    "Music": ("music",),
    "Musical": ("musical",),
    "Mystery": ("mystery", "whodunit"),
    "Romance": ("romance",),  # "romantic" is a mood
    "Sci-Fi": ("sci-fi", "science fiction", "scifi"),
    "Sport": ("sports",),
    "Thriller": ("thriller",),
    "War": ("war",),
    "Western": ("western",),
}

# Mood themes, implied by a genre.
MOODS: dict[str, tuple[str, ...]] = {
    "funny": ("Comedy",),
    "scary": ("Horror",),
    "suspenseful": ("Thriller", "Mystery"),
    "heartwarming": ("Children", "Family", "Animation"),
    "mind-bending": ("Sci-Fi",),
    "action-packed": ("Action",),
    "gritty": ("Crime", "Film-Noir"),
    "romantic": ("Romance",),
    "epic": ("Adventure", "War"),
    "whimsical": ("Fantasy",),
    "moving": ("Drama",),
}

# Subject themes, found in a movie's summary text (whole-word, case-insensitive).
THEME_PATTERNS: dict[str, str] = {
    "world war ii": r"world war ii|second world war|nazis?\b",
    "civil war": r"civil war",
    "vietnam war": r"vietnam war",
    "soldiers": r"soldiers?\b",
    "police": r"police|detectives?\b",
    "murder": r"murder",
    "serial killer": r"serial killers?",
    "assassins": r"assassins?\b|hitman",
    "spies": r"spy\b|spies\b|espionage",
    "gangsters": r"gangsters?|mafia|mobsters?",
    "heist": r"heists?\b|robbery|robbers?\b",
    "prison": r"prison|jail",
    "revenge": r"revenge|vengeance",
    "drugs": r"drugs?\b|addiction",
    "kidnapping": r"kidnap",
    "love story": r"in love\b|love story|romance between",
    "marriage": r"marriage|married|wedding|divorce",
    "friendship": r"friendship",
    "coming of age": r"coming[- ]of[- ]age|high school|teenagers?\b",
    "ghosts": r"ghosts?\b|haunted",
    "vampires": r"vampires?",
    "aliens": r"aliens?\b|extraterrestrial",
    "monsters": r"monsters?\b",
    "magic": r"magic|witch|wizard",
    "journalism": r"journalists?\b|reporters?\b|newspaper",
    "musicians": r"musicians?\b|singers?\b|band\b",
    "dance": r"dance|dancers?\b|ballet",
    "samurai": r"samurai",
    "cowboys": r"cowboys?|outlaws?\b",
    "islands": r"islands?\b",
}

_PLOT_STOPWORDS = re.compile(
    r"\b(film|movie|released|box office|awards?|oscars?|critics?|grossed|directed|stars?|starring|cast|"
    r"production|novel|book|screenplay|based on|greatest|listed|regarded|acclaim\w*|sequel|remake)\b",
    re.IGNORECASE)  # plot clauses skip production talk
_COMPILED_THEMES = {theme: re.compile(rf"\b(?:{pattern})", re.IGNORECASE) for theme, pattern in THEME_PATTERNS.items()}


@dataclass(frozen=True)
class Movie:
    item_id: str
    title: str
    year: int | None
    genres: tuple[str, ...]
    directors: tuple[str, ...]
    cast: tuple[str, ...]
    writers: tuple[str, ...]
    summary: str | None
    themes: tuple[str, ...]

    @property
    def people(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.directors + self.cast + self.writers))


def themes_of(genres: tuple[str, ...], summary: str | None) -> tuple[str, ...]:
    moods = [mood for mood, implied in MOODS.items() if set(implied) & set(genres)]
    subjects = [theme for theme, rx in _COMPILED_THEMES.items() if summary and rx.search(summary)]
    return tuple(moods + subjects)


def movie_from_row(row: dict) -> Movie:
    """One ITEMS row -> Movie; `attributes` is the JSON object text of ITEMS (cast/writer keys optional)."""
    try:
        attributes = json.loads(row["attributes"]) if row.get("attributes") else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"item {row['item_id']}: attributes is not JSON: {err}") from err
    genres = tuple(row.get("categories") or ())
    summary = row.get("description") or None
    return Movie(
        item_id=row["item_id"], title=row["title"], year=row.get("year"), genres=genres,
        directors=split_names(row.get("creator")), cast=split_names(attributes.get("cast")),
        writers=split_names(attributes.get("writer")), summary=summary, themes=themes_of(genres, summary),
    )


def movies_from_items(items: pa.Table) -> list[Movie]:
    return [movie_from_row(row) for row in items.to_pylist()]


def film_counts(movies: list[Movie]) -> tuple[Counter[str], Counter[str]]:
    """(films per director, films per cast member) over the catalog."""
    directors = Counter(p for m in movies for p in m.directors)
    cast = Counter(p for m in movies for p in m.cast)
    return directors, cast


def plot_fragments(m: Movie) -> list[str]:
    """Plot-like clauses of the summary (not its first sentence, nothing about the production or names)."""
    if not m.summary:
        return []
    names = [m.title, *m.people]
    fragments = []
    for sentence in re.split(r"(?<=[.!?])\s+", m.summary.strip())[1:]:
        words = sentence.split()
        if not 8 <= len(words) <= 25 or _PLOT_STOPWORDS.search(sentence) or re.search(r"\d", sentence):
            continue
        if any(name and name.lower() in sentence.lower() for name in names) or '"' in sentence:
            continue
        fragments.append(sentence[0].lower() + sentence[1:].rstrip(".!?"))
    return fragments
