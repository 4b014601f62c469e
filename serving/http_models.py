"""The HTTP API's request and response models and its limits, one place for every route (serving.http).

Every bound here is in the OpenAPI schema, and the filter bounds are serving.filters' own, so the
reader refuses the same values when called as a library. Bad input is a 400 naming the field.
JSON bodies are strict, as the library is: no boolean or string is read as a number (`"k": true`,
`"k": "3"`); query strings (GET) are text, so their numbers are parsed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from serving.filters import MAX_CATEGORIES, PRICE_RANGE, YEAR_RANGE, Filters
from serving.filters import MAX_TEXT_CHARS as MAX_FILTER_CHARS
from serving.hits import Hit
from serving.limits import MAX_K, MAX_TEXT_CHARS, check_text

MAX_BODY_BYTES = 64 * 1024  # a request body at every limit above is under 20 KB

RequestText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(check_text)]
K = Annotated[int, Field(ge=1, le=MAX_K)]

FilterText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_FILTER_CHARS)]
Year = Annotated[int, Field(ge=YEAR_RANGE[0], le=YEAR_RANGE[1])]
Price = Annotated[float, Field(ge=PRICE_RANGE[0], le=PRICE_RANGE[1], allow_inf_nan=False)]


class FilterModel(BaseModel):
    """Hard filters: an item must pass all that are given. An unknown field is a 400."""

    model_config = ConfigDict(extra="forbid", strict=True)
    creator: FilterText | None = Field(default=None, description="exact director, brand or store")
    categories: list[FilterText] | None = Field(default=None, min_length=1, max_length=MAX_CATEGORIES,
                                                description="the item has at least one of these")
    year_min: Year | None = Field(default=None, description="inclusive; items without a year fail it")
    year_max: Year | None = None
    price_min: Price | None = Field(default=None, description="inclusive; items without a price fail it")
    price_max: Price | None = None

    def to_filters(self) -> Filters:
        """serving.filters.Filters; FilterError (a 400) when a minimum is above its maximum."""
        return Filters.parse(self.model_dump(exclude_none=True, include=set(FilterModel.model_fields)))


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: RequestText
    k: K = 10
    mode: Literal["dense", "hybrid", "rrf"] | None = Field(default=None, description=(
        "dense, hybrid or rrf; absent: the snapshot's fusion, chosen on validation when it was published"))
    filters: FilterModel | None = None


class SimilarQuery(FilterModel):
    """`GET /items/{id}/similar` query: k and the same filters as /search (`categories` repeats)."""

    model_config = ConfigDict(extra="forbid", strict=False)  # a query string's values are all text
    k: K = 10


class Results(BaseModel):
    snapshot_id: str
    items: list[Hit]


class HealthBody(BaseModel):
    status: Literal["ok", "failing"] = Field(description="failing (HTTP 503) after too many failed refreshes in a row")
    snapshot_id: str = Field(description="the snapshot being served (still served while failing)")
    failed_refreshes: int = Field(description="refreshes of LATEST that failed in a row")
    last_error: str | None = Field(description="why the latest refresh failed, while failures continue")


class FusionInfo(BaseModel):
    method: Literal["dense", "hybrid", "rrf"]
    bm25_weight: float
    rrf_k: int
    link_weight: float = Field(description="weight of the titles a query names, with their neighbours (0: off)")
    prior_weight: float = Field(description="weight of the popularity prior blended into the fused score (0: off)")


class SnapshotInfo(BaseModel):
    catalog: str
    snapshot_id: str
    created_at: str
    git_rev: str
    embedding_model: str
    dim: int
    items: int
    fusion: FusionInfo = Field(description="the default search: method, the hybrid's BM25 weight, RRF's k, "
                                                 "title links, popularity prior")


class Problem(BaseModel):
    """A 4xx body: what was wrong, naming the field."""

    detail: list[str] | str
