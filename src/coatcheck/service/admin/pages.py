"""The dashboard's pages: overview, users, security events, consent. Each only reads;
the actions that change something are in ``actions``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, Final, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from coatcheck.core import events as ev
from coatcheck.core.events import SessionEvent
from coatcheck.engine.results import SessionInfo
from coatcheck.service.admin import figures
from coatcheck.service.admin.web import admin_only, admin_state, page, session_of
from coatcheck.service.api import HANDLE_PATTERN
from coatcheck.service.apikeys import ApiKey
from coatcheck.service.models import storable_text

T = TypeVar("T")
logger = logging.getLogger("coatcheck.service.admin")

DAY: Final = 24 * 3600.0
RANGES: Final = (1, 7, 30)
"""Days the overview and consent pages can look back."""
MAX_QUERY: Final = 256
EVENT_ROWS: Final = 200
EVENT_LABELS: Final = {
    ev.THEFT_SUSPECTED: "Theft suspected",
    ev.LIMIT_REACHED: "Session limit reached",
    ev.CLIENT_CHANGED: "Client changed",
}


async def asked(call: Awaitable[T], what: str) -> tuple[T | None, bool]:
    """The provider's answer, and whether it failed: a provider that raises (its store
    is down) leaves its part of the page empty with a note, never a 500."""
    try:
        return await call, False
    except Exception:
        logger.warning("the dashboard's %s provider failed", what, exc_info=True)
        return None, True


def user_problem(query: str) -> str | None:
    """Why ``query`` is no user id a store can look up, or None."""
    if len(query) > MAX_QUERY:
        return f"A user id has at most {MAX_QUERY} characters."
    try:
        storable_text(query)
    except ValueError as exc:
        return f"Not a user id: {exc}."
    return None


def days_of(request: Request) -> int:
    raw = request.query_params.get("days", "7")
    return int(raw) if raw in {str(d) for d in RANGES} else 7


def window(request: Request) -> tuple[int, float, float]:
    """The range the page shows: its days, and ``since`` and ``until`` in epoch seconds."""
    days = days_of(request)
    until = admin_state(request).service.manager.clock()
    return days, until - days * DAY, until


@admin_only
async def overview(request: Request, key: ApiKey) -> Response:
    """Headline figures and charts of the chosen range (and route), and the live count."""
    state = admin_state(request)
    days, since, until = window(request)
    route = request.query_params.get("route", "").strip()[:MAX_QUERY] or None
    summary, failed = await asked(state.data.summary(since, until, route), "summary")
    return page(
        request,
        "overview.html",
        key=key,
        days=days,
        ranges=RANGES,
        route=route or "",
        live=await state.active.get(state.service),
        headline=figures.headline(summary) if summary is not None else [],
        charts=figures.overview_charts(summary) if summary is not None else [],
        configured=summary is not None,
        failed=failed,
    )


def device(info: SessionInfo) -> dict[str, Any]:
    """One row of a user's sessions."""
    agent = info.user_agent or "unknown device"
    return {
        "handle": info.handle,
        "agent": agent,
        "short": agent if len(agent) <= 60 else agent[:57] + "...",
        "ip": info.ip or "-",
        "created_at": info.created_at,
        "last_seen_at": info.last_seen_at,
        "expires_at": info.expires_at,
        "auth_at": info.auth_at,
        "remember": info.remember,
    }


@admin_only
async def users(request: Request, key: ApiKey) -> Response:
    """A user's live sessions by exact user id (the stores index sessions by user id; no
    store contract offers a search by part of one)."""
    query = request.query_params.get("q", "").strip()
    rows: list[dict[str, Any]] | None = None
    error = user_problem(query) if query else None
    if query and error is None:
        infos = await admin_state(request).service.manager.list_user_sessions(query)
        rows = [device(info) for info in infos if HANDLE_PATTERN.fullmatch(info.handle)]
    this = session_of(request).handle
    return page(request, "users.html", key=key, query=query, rows=rows, error=error, this=this)


def event_row(event: SessionEvent) -> dict[str, Any]:
    detail = ", ".join(f"{k}={v}" for k, v in sorted(event.detail.items()))
    return {
        "at": event.at,
        "kind": EVENT_LABELS.get(event.name, event.name),
        "handle": event.handle or "-",
        "user": event.user_id or "-",
        "detail": detail or "-",
    }


@admin_only
async def security(request: Request, key: ApiKey) -> Response:
    """The latest theft suspicions, refused logins over the session limit and sessions
    that came back from another client, with a count of each."""
    found, failed = await asked(admin_state(request).data.security_events(EVENT_ROWS), "events")
    events = found or []
    counts = {label: 0 for label in EVENT_LABELS.values()}
    for event in events:
        label = EVENT_LABELS.get(event.name)
        if label is not None:
            counts[label] += 1
    rows = [event_row(e) for e in events]
    return page(request, "security.html", key=key, rows=rows, counts=counts, failed=failed)


@admin_only
async def consent(request: Request, key: ApiKey) -> Response:
    """Share of sessions granting each consent category, and the share sending GPC."""
    days, since, until = window(request)
    found, failed = await asked(admin_state(request).data.consent(since, until), "consent")
    charts = figures.consent_charts(found) if found is not None else []
    sessions = figures.number(found.get("sessions")) if found is not None else None
    return page(
        request,
        "consent.html",
        key=key,
        days=days,
        ranges=RANGES,
        charts=charts,
        sessions=sessions,
        configured=found is not None,
        failed=failed,
    )
