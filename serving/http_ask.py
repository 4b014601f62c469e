"""POST /ask: a conversational request, answered from the snapshot's intent/ folder (serving.conversation.ask).

    {"text": "something like Heat but funnier", "k": 10}
    -> {"snapshot_id", "intent", "request": {intent, titles, genres, people, themes}, "message",
        "items": [{...a search hit, "explanation": "If you enjoyed Heat, you might like ..."}]}

Bounded like /search (text length, k); a snapshot that ships no intent/ answers 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from serving.conversation.ask import Answer
from serving.conversation.extraction import Intent
from serving.hits import Hit
from serving.http_models import K, RequestText
from serving.reader import Reader


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: RequestText = Field(description="what the user says")
    k: K = 10


class Request(BaseModel):
    """What the extractor read in the text: the intent and the catalog names it mentions."""

    intent: Intent
    titles: list[str]
    genres: list[str]
    people: list[str]
    themes: list[str]


@dataclass(frozen=True)
class Explained(Hit):
    explanation: str  # one sentence, built only from metadata the item shares with the anchor or the request


class AskAnswer(BaseModel):
    snapshot_id: str
    intent: Intent
    request: Request
    message: str = Field(description="for chit-chat / help: what to say instead of (or before) items")
    items: list[Explained]


def answer_json(snapshot_id: str, answer: Answer) -> dict[str, Any]:
    """The /ask response body (also what `semrec ask --json` prints)."""
    return {"snapshot_id": snapshot_id, **answer.to_dict()}


def ask_routes(reader: Reader) -> APIRouter:
    router = APIRouter()

    @router.post("/ask", response_model=AskAnswer, responses={404: {"description": "the snapshot ships no intent/"}})
    def ask(body: AskBody) -> dict[str, Any]:
        snapshot = reader.snapshot  # one snapshot for the whole request, even if a refresh swaps it
        if snapshot.conversation is None:
            raise HTTPException(status_code=404, detail=(
                f"snapshot {snapshot.snapshot_id} of {reader.catalog} ships no intent/ folder: "
                "it cannot answer conversational requests (use POST /search)"))
        return answer_json(snapshot.snapshot_id, snapshot.ask(body.text, body.k))

    return router
