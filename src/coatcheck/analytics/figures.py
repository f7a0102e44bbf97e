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
runs in one transaction of the store. Visit figures read the visits table (indexed by
start); page and event counts read the store's hourly counts for the full hours of the
range and the rows themselves only for the partial hours at its ends, so a week's report
over a million page views reads a few thousand counts. With ``route``, the page and event
counts are those of the visits kept, read from the rows.
"""

from __future__ import annotations

import math
from collections import Counter
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


class Range:
    """The visits of ``[since, until)`` (with ``route``: those that viewed it), as a SQL
    condition and its parameters."""

    def __init__(self, store: AnalyticsStore, since: float, until: float, route: str | None):
        self.store, self.since, self.until, self.route = store, since, until, route
        self.where = "started >= ? AND started < ?"
        self.params: tuple[Any, ...] = (since, until)
        if route is not None:
            self.where += (
                f" AND id IN (SELECT visit FROM {store.table} WHERE kind = '{PAGE}' "
                "AND at >= ? AND at < ? AND name = ?)"
            )
            self.params += (since, until, route)

    def visits(self, select: str, tail: str = "") -> str:
        return f"SELECT {select} FROM {self.store.visits} WHERE {self.where} {tail}"


def _rank(p: int, n: int) -> int:
    return max(1, math.ceil(p * n / 100))


def _counts(r: Range, q: Query, kind: str, columns: str) -> Counter[tuple[Any, ...]]:
    """Rows of ``kind`` in the range, counted by ``columns`` (``name`` or ``previous,
    name``): full hours from the hourly counts, the partial hours at the ends from the
    rows (with a route filter, all from the rows of the visits kept)."""
    store, counted = r.store, Counter[tuple[Any, ...]]()
    raw = f"SELECT {columns}, COUNT(*) FROM {store.table} WHERE kind = ? AND at >= ? AND at < ?"
    first, last = math.ceil(r.since / HOUR) * HOUR, int(r.until // HOUR) * HOUR
    if r.route is not None:
        spans = [(r.since, r.until)]
        raw += f" AND visit IN (SELECT id FROM {store.visits} WHERE {r.where})"
        extra = r.params
    elif first >= last:
        spans, extra = [(r.since, r.until)], ()
    else:
        spans, extra = [(r.since, first), (last, r.until)], ()
        for *key, n in q(
            f"SELECT {columns}, SUM(n) FROM {store.hourly} WHERE kind = ? AND hour >= ? "
            f"AND hour < ? GROUP BY {columns}",
            (kind, first, last),
        ):
            counted[tuple("" if v is None else v for v in key)] += int(n)
    for lo, hi in spans:
        if lo < hi:
            for *key, n in q(f"{raw} GROUP BY {columns}", (kind, lo, hi, *extra)):
                counted[tuple("" if v is None else v for v in key)] += int(n)
    return counted


def _top(counted: Counter[Any], top: int) -> list[tuple[Any, int]]:
    """The ``top`` largest counts, ties by key."""
    return sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:top]


def _end_reason(name: str, reason: str | None) -> str:
    short = name.removeprefix("session.")
    if name in (ev.EXPIRED, ev.REVOKED) and reason:
        return f"{short}_{reason}"
    return short


def _stamp(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def _series(r: Range, q: Query) -> dict[str, Any]:
    """Visits, visitors (sessions) and page views per hour and per day (UTC), by the hour
    each visit started in; every bucket of the range present (zeros included), so a chart
    needs no gap filling."""
    out: dict[str, Any] = {}
    for label, size in (("hour", HOUR), ("day", DAY)):
        bucket = r.store.bucket("started", size)
        found = {
            int(b): (int(v), int(s), int(p))
            for b, v, s, p in q(
                r.visits(
                    f"{bucket} AS b, COUNT(*), COUNT(DISTINCT session), SUM(pages)", "GROUP BY b"
                ),
                r.params,
            )
        }
        buckets = []
        for at in range(int(r.since // size) * size, math.ceil(r.until / size) * size, size):
            v, s, p = found.get(at, (0, 0, 0))
            buckets.append({"start": _stamp(at), "visits": v, "visitors": s, "page_views": p})
        out[label] = buckets
    return out


def _lists(r: Range, q: Query, top: int) -> dict[str, Any]:
    """The ranked lists: pages, entries, exits, transitions, clients, custom events."""
    pages = _counts(r, q, PAGE, "previous, name")
    views: Counter[str] = Counter()
    moves: Counter[tuple[str, str]] = Counter()
    for (previous, name), n in pages.items():
        views[name] += n
        if previous:
            moves[previous, name] += n
    ends: dict[str, Counter[str]] = {"entry": Counter(), "exit": Counter()}
    clients: dict[str, Counter[str]] = {
        "browsers": Counter(),
        "os": Counter(),
        "devices": Counter(),
    }
    # One pass over the visits for both splits (a few thousand groups at most).
    for entry, exit_, browser, system, device, count in q(
        r.visits(
            "entry, exit, browser, os, device, COUNT(*)",
            "GROUP BY entry, exit, browser, os, device",
        ),
        r.params,
    ):
        n = int(count)
        if entry is not None:
            ends["entry"][entry] += n
        if exit_ is not None:
            ends["exit"][exit_] += n
        clients["browsers"][browser or "Other"] += n
        clients["os"][system or "Other"] += n
        clients["devices"][device or "Other"] += n
    events = Counter({name: n for (name,), n in _counts(r, q, EVENT, "name").items()})
    return {
        "top_pages": [{"route": k, "views": n} for k, n in _top(views, top)],
        "entry_pages": [{"route": k, "visits": n} for k, n in _top(ends["entry"], top)],
        "exit_pages": [{"route": k, "visits": n} for k, n in _top(ends["exit"], top)],
        "transitions": [{"from": a, "to": b, "count": n} for (a, b), n in _top(moves, top)],
        **{
            key: [{"name": k, "visits": n} for k, n in _top(counted, top)]
            for key, counted in clients.items()
        },
        "events": [{"name": k, "count": n} for k, n in _top(events, top)],
    }


def _ends(r: Range, q: Query) -> list[dict[str, Any]]:
    """How sessions ended in the range, by reason (with a route filter: the sessions of
    the visits kept)."""
    names = ", ".join(f"'{n}'" for n in _ENDINGS)
    scoped, extra = "", ()
    if r.route is not None:
        scoped = f" AND session IN ({r.visits('session')})"
        extra = r.params
    ends: Counter[str] = Counter()
    for name, reason, count in q(
        f"SELECT name, reason, COUNT(*) FROM {r.store.table} "
        f"WHERE kind = '{LIFECYCLE}' AND at >= ? AND at < ? AND name IN ({names}){scoped} "
        "GROUP BY name, reason",
        (r.since, r.until, *extra),
    ):
        ends[_end_reason(name, reason)] += int(count)
    return [{"reason": k, "count": n} for k, n in _top(ends, len(ends))]


def _logins(r: Range, q: Query) -> tuple[int, float | None]:
    """Visits with a login, and the median wait from the visit's start to its first one:
    read from the login rows (few) to the visits of their session (indexed)."""
    store = r.store
    kept = "" if r.route is None else f" AND v.id IN ({r.visits('id')})"
    # CROSS JOIN: SQLite then loops over the logins first (PostgreSQL plans it as any
    # inner join); each login finds its visit through the (session, ended) index.
    waits = (
        f"SELECT v.id, MIN(l.at) - v.started FROM {store.table} l "
        f"CROSS JOIN {store.visits} v WHERE l.kind = '{LIFECYCLE}' AND l.at >= ? "
        f"AND l.at < ? AND l.name = '{ev.LOGIN}' AND v.session = l.session "
        "AND v.ended >= l.at - ? AND v.started <= l.at AND v.started >= ? AND v.started < ?"
        f"{kept} GROUP BY v.id, v.started"
    )
    params = (r.since, r.until + store.visit_gap, store.visit_gap, r.since, r.until)
    rows = sorted(float(w) for _, w in q(waits, (*params, *(() if r.route is None else r.params))))
    if not rows:
        return 0, None
    return len(rows), rows[_rank(50, len(rows)) - 1]


def _durations(r: Range, q: Query, n: int) -> tuple[float | None, float | None]:
    """The nearest-rank p50 and p90 of the visits' durations, from their counts by value
    (a hash aggregate, where a rank over every visit would sort them all)."""
    if n == 0:
        return None, None
    ranks = [_rank(50, n), _rank(90, n)]
    found: list[float] = []
    seen = 0
    for duration, count in sorted(
        q(r.visits("ended - started AS d, COUNT(*)", "GROUP BY d"), r.params)
    ):
        seen += int(count)
        while ranks and seen >= ranks[0]:
            found.append(float(duration))
            ranks.pop(0)
        if not ranks:
            break
    return found[0], found[1]


def _totals(r: Range, q: Query, now: float) -> dict[str, Any]:
    """The headline figures of the visits of the range."""
    visits, pages, bounces, sessions, users = q(
        r.visits(
            "COUNT(*), COALESCE(SUM(pages), 0), "
            "COALESCE(SUM(CASE WHEN pages = 1 AND events = 0 THEN 1 ELSE 0 END), 0), "
            "COUNT(DISTINCT session), COUNT(DISTINCT user_id)"
        ),
        r.params,
    )[0]
    visits = int(visits)
    p50, p90 = _durations(r, q, visits)
    logins, login_p50 = _logins(r, q)
    active = q(
        f"SELECT COUNT(DISTINCT session) FROM {r.store.table} "
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
    r = Range(store, since, until, route)
    with store.session() as q:
        found = _totals(r, q, now)
        found.update(_lists(r, q, top))
        found["end_reasons"] = _ends(r, q)
        found["series"] = _series(r, q)
    return {key: found[key] for key in KEYS}
