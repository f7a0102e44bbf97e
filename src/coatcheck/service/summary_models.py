"""The OpenAPI shape of ``GET /v1/analytics/summary``: the document of
``coatcheck.analytics.figures.summary``, field by field, so the schema test can check
every answer against it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Visitors(BaseModel):
    sessions: int
    users: int


class Page(BaseModel):
    route: str
    views: int


class Entry(BaseModel):
    route: str
    visits: int


class Transition(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    count: int


class Reason(BaseModel):
    reason: str
    count: int


class Split(BaseModel):
    name: str
    visits: int


class CustomEvent(BaseModel):
    name: str
    count: int


class Bucket(BaseModel):
    start: str = Field(description="UTC, ISO 8601")
    visits: int
    visitors: int
    page_views: int


class Series(BaseModel):
    hour: list[Bucket]
    day: list[Bucket]


class Summary(BaseModel):
    """Figures of a date range; see docs/analytics.md for each definition."""

    visits: int
    visitors: Visitors
    active_now: int
    bounce_rate: float
    pages_per_visit: float
    duration_p50: float | None
    duration_p90: float | None
    top_pages: list[Page]
    entry_pages: list[Entry]
    exit_pages: list[Entry]
    transitions: list[Transition]
    login_share: float
    time_to_login_p50: float | None
    end_reasons: list[Reason]
    browsers: list[Split]
    os: list[Split]
    devices: list[Split]
    events: list[CustomEvent]
    series: Series
