"""The figures, defined as Matomo, Plausible and Umami define them, computed in SQL.

- A **visit** is a run of one session's page views and custom events with no gap longer
  than the store's ``visit_gap`` (30 minutes by default): a long session makes several
  visits. The store places each row in its visit as it writes it (``store.write_batch``),
  so a report reads visits, never re-derives them from a million rows.
- A **bounce** is a visit with one page view and no custom event; a visit's **duration**
  is its last page view or event minus its first (so a bounce lasts 0 s).
- **Visitors** are distinct sessions and distinct users among the visits.
- **Active now**: sessions with a page view or event in the 5 minutes up to ``now``.
- Percentiles are nearest-rank: the value at rank ``ceil(p * n / 100)`` of the sorted values.
- **Login share**: visits during which the session logged in (a login at most the visit gap
  after the visit's last activity still counts: the request that logs in is the visit's),
  and the median time from the visit's start to that login.
- **End reasons**: the lifecycle events that end a session (logout, expiry by reason,
  revocation by reason, theft suspected) in the range.
- The range is ``[since, until)``: the visits that started in it, the page views and
  events made in it. ``route`` keeps the visits that viewed that route (a page filter, as
  Plausible's), and the page views and events of those visits.

``summary`` is the one entry point (the command, the service and the dashboard call it); it
runs in one transaction of the store, over one temporary table: the visits of the range.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

from coatcheck.analytics.rows import EVENT, LIFECYCLE, PAGE
from coatcheck.analytics.store import AnalyticsStore, Query
from coatcheck.core import events as ev

__all__ = ["KEYS", "summary"]

KEYS: Final = (
    "visits",
    "visitors",
    "active_now",
    "bounce_rate",
    "pages_per_visit",
    "duration_p50",
    "duration_p90",
    "top_pages",
    "entry_pages",
    "exit_pages",
    "transitions",
    "login_share",
    "time_to_login_p50",
    "end_reasons",
    "browsers",
    "os",
    "devices",
    "events",
    "series",
)
"""The keys of the summary document, in order (stable: tools read them)."""

ACTIVE_WINDOW: Final = 5 * 60.0
HOUR: Final = 3600
DAY: Final = 86400
_ENDINGS: Final = (ev.LOGOUT, ev.EXPIRED, ev.REVOKED, ev.THEFT_SUSPECTED)
_TEMP: Final = "cc_visits"


def _build(store: AnalyticsStore, q: Query, since: float, until: float, route: str | None) -> None:
    """``cc_visits``: the visits that started in the range (with ``route``: that viewed it)."""
    q(store.drop_temp(_TEMP), ())
    select = f"SELECT * FROM {store.visits} WHERE started >= ? AND started < ?"
    params: tuple[Any, ...] = (since, until)
    if route is not None:
        select += (
            f" AND id IN (SELECT visit FROM {store.table} WHERE kind = '{PAGE}' "
            "AND at >= ? AND at < ? AND name = ?)"
        )
        params += (since, until, route)
    q(store.temp_table(_TEMP, select), params)


def _rows_of(store: AnalyticsStore, kind: str, route: str | None) -> str:
    """The ``FROM ... WHERE`` of the range's rows of ``kind`` (``?`` twice: the range)."""
    where = f"FROM {store.table} WHERE kind = '{kind}' AND at >= ? AND at < ?"
    if route is not None:
        where += f" AND visit IN (SELECT id FROM {_TEMP})"
    return where


def _rank(p: int, n: int) -> int:
    return max(1, math.ceil(p * n / 100))


def _percentiles(q: Query, expr: str, source: str, n: int) -> tuple[float | None, float | None]:
    """The nearest-rank p50 and p90 of ``expr`` over ``source``'s ``n`` rows."""
    if n == 0:
        return None, None
    ranks = (_rank(50, n), _rank(90, n))
    found: dict[int, float] = dict(
        q(
            f"SELECT rn, d FROM (SELECT {expr} AS d, ROW_NUMBER() OVER "
            f"(ORDER BY {expr}) AS rn FROM {source}) x WHERE rn IN (?, ?)",
            ranks,
        )
    )
    return float(found[ranks[0]]), float(found[ranks[1]])


def _counted(rows: list[tuple[Any, ...]], *names: str) -> list[dict[str, Any]]:
    """Rows as objects; counts as ints (a driver may hand back ``Decimal``)."""
    return [
        {
            n: (v if isinstance(v, str) or v is None else int(v))
            for n, v in zip(names, r, strict=True)
        }
        for r in rows
    ]


def _end_reason(name: str, reason: str | None) -> str:
    short = name.removeprefix("session.")
    if name in (ev.EXPIRED, ev.REVOKED) and reason:
        return f"{short}_{reason}"
    return short


def _series(store: AnalyticsStore, q: Query, since: float, until: float) -> dict[str, Any]:
    """Visits, visitors (sessions) and page views per hour and per day (UTC), by the hour
    each visit started in; every bucket of the range present (zeros included), so a chart
    needs no gap filling."""
    out: dict[str, Any] = {}
    for label, size in (("hour", HOUR), ("day", DAY)):
        found = {
            int(b): (int(v), int(s), int(p))
            for b, v, s, p in q(
                f"SELECT {store.bucket('started', size)} AS b, COUNT(*), "
                f"COUNT(DISTINCT session), SUM(pages) FROM {_TEMP} GROUP BY b",
                (),
            )
        }
        buckets = []
        for at in range(int(since // size) * size, math.ceil(until / size) * size, size):
            v, s, p = found.get(at, (0, 0, 0))
            start = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
            buckets.append({"start": start, "visits": v, "visitors": s, "page_views": p})
        out[label] = buckets
    return out


def _ranked(
    q: Query, select: str, params: tuple[Any, ...], names: tuple[str, ...], top: int
) -> list[dict[str, Any]]:
    return _counted(q(select + " LIMIT ?", (*params, top)), *names)


def _lists(
    store: AnalyticsStore, q: Query, since: float, until: float, route: str | None, top: int
) -> dict[str, Any]:
    """The ranked lists: pages, entries, exits, transitions, clients, custom events."""
    span = (since, until)
    pages = _rows_of(store, PAGE, route)
    doc: dict[str, Any] = {
        "top_pages": _ranked(
            q,
            f"SELECT name, COUNT(*) AS n, COUNT(DISTINCT visit) {pages} GROUP BY name "
            "ORDER BY n DESC, name",
            span,
            ("route", "views", "visits"),
            top,
        ),
    }
    for key, column in (("entry_pages", "entry"), ("exit_pages", "exit")):
        doc[key] = _ranked(
            q,
            f"SELECT {column}, COUNT(*) AS n FROM {_TEMP} WHERE {column} IS NOT NULL "
            f"GROUP BY {column} ORDER BY n DESC, {column}",
            (),
            ("route", "visits"),
            top,
        )
    doc["transitions"] = _ranked(
        q,
        f"SELECT previous, name, COUNT(*) AS n {pages} AND previous IS NOT NULL "
        "GROUP BY previous, name ORDER BY n DESC, previous, name",
        span,
        ("from", "to", "count"),
        top,
    )
    for key, column in (("browsers", "browser"), ("os", "os"), ("devices", "device")):
        doc[key] = _ranked(
            q,
            f"SELECT COALESCE({column}, 'Other') AS name, COUNT(*) AS n FROM {_TEMP} "
            "GROUP BY name ORDER BY n DESC, name",
            (),
            ("name", "visits"),
            top,
        )
    doc["events"] = _ranked(
        q,
        f"SELECT name, COUNT(*) AS n, COUNT(DISTINCT visit) {_rows_of(store, EVENT, route)} "
        "GROUP BY name ORDER BY n DESC, name",
        span,
        ("name", "count", "visits"),
        top,
    )
    return doc


def _ends(
    store: AnalyticsStore, q: Query, since: float, until: float, route: str | None
) -> list[dict[str, Any]]:
    """How sessions ended in the range, by reason (with a route filter: the sessions of
    the visits kept)."""
    names = ", ".join(f"'{n}'" for n in _ENDINGS)
    scoped = f" AND session IN (SELECT session FROM {_TEMP})" if route is not None else ""
    ends: dict[str, int] = {}
    for name, reason, count in q(
        f"SELECT name, reason, COUNT(*) FROM {store.table} "
        f"WHERE kind = '{LIFECYCLE}' AND at >= ? AND at < ? AND name IN ({names}){scoped} "
        "GROUP BY name, reason",
        (since, until),
    ):
        label = _end_reason(name, reason)
        ends[label] = ends.get(label, 0) + int(count)
    ranked = sorted(ends.items(), key=lambda item: (-item[1], item[0]))
    return [{"reason": k, "count": v} for k, v in ranked]


def _logins(
    store: AnalyticsStore, q: Query, since: float, until: float
) -> tuple[int, float | None]:
    """Visits with a login, and the median wait from the visit's start to its first one."""
    waits = (
        f"SELECT v.id, MIN(l.at) - v.started AS wait FROM {store.table} l "
        f"JOIN {_TEMP} v ON v.session = l.session AND l.at >= v.started "
        "AND l.at <= v.ended + ? "
        f"WHERE l.kind = '{LIFECYCLE}' AND l.at >= ? AND l.at < ? AND l.name = '{ev.LOGIN}' "
        "GROUP BY v.id, v.started"
    )
    rows = [float(w) for _, w in q(waits, (store.visit_gap, since, until + store.visit_gap))]
    if not rows:
        return 0, None
    rows.sort()
    return len(rows), rows[_rank(50, len(rows)) - 1]


def _totals(
    store: AnalyticsStore, q: Query, since: float, until: float, now: float
) -> dict[str, Any]:
    """The headline figures of the visits of the range."""
    visits, pages, bounces, sessions, users = q(
        "SELECT COUNT(*), COALESCE(SUM(pages), 0), "
        "COALESCE(SUM(CASE WHEN pages = 1 AND events = 0 THEN 1 ELSE 0 END), 0), "
        f"COUNT(DISTINCT session), COUNT(DISTINCT user_id) FROM {_TEMP}",
        (),
    )[0]
    visits = int(visits)
    p50, p90 = _percentiles(q, "ended - started", _TEMP, visits)
    logins, login_p50 = _logins(store, q, since, until)
    active = q(
        f"SELECT COUNT(DISTINCT session) FROM {store.table} "
        f"WHERE kind IN ('{PAGE}', '{EVENT}') AND at > ? AND at <= ?",
        (now - ACTIVE_WINDOW, now),
    )[0][0]
    return {
        "visits": visits,
        "visitors": {"sessions": int(sessions), "users": int(users)},
        "active_now": int(active),
        "bounce_rate": round(int(bounces) / visits, 4) if visits else 0.0,
        "pages_per_visit": round(int(pages) / visits, 2) if visits else 0.0,
        "duration_p50": p50,
        "duration_p90": p90,
        "login_share": round(logins / visits, 4) if visits else 0.0,
        "time_to_login_p50": login_p50,
    }


def summary(
    store: AnalyticsStore,
    since: float,
    until: float,
    route: str | None = None,
    *,
    now: float | None = None,
    top: int = 10,
) -> dict[str, Any]:
    """Every figure of ``[since, until)`` (epoch seconds) as one JSON-ready document with
    the keys of ``KEYS``, in that order. ``now`` (default ``until``) anchors
    ``active_now``; ``top`` bounds each ranked list."""
    if until <= since:
        raise ValueError("until must be after since")
    now = until if now is None else now
    with store.session() as q:
        _build(store, q, since, until, route)
        found = _totals(store, q, since, until, now)
        found.update(_lists(store, q, since, until, route, top))
        found["end_reasons"] = _ends(store, q, since, until, route)
        found["series"] = _series(store, q, since, until)
        q(store.drop_temp(_TEMP), ())
    return {key: found[key] for key in KEYS}
