"""The figures, defined as Matomo, Plausible and Umami define them, computed in SQL.

- A **visit** is a run of one session's page views and custom events with no gap longer
  than ``gap`` (30 minutes by default): a long session makes several visits.
- A **bounce** is a visit with one page view and no custom event; a visit's **duration**
  is its last page view or event minus its first (so a bounce lasts 0 s).
- **Visitors** are distinct sessions and distinct users among the visits.
- **Active now**: sessions with a page view or event in the last 5 minutes before ``now``.
- Percentiles are nearest-rank: the value at rank ``ceil(p * n / 100)`` of the sorted values.
- **Login share**: visits during which the session logged in (a login at most ``gap`` after
  the visit's last activity still counts: the request that logs in is the visit's), and the
  median time from the visit's start to that login.
- **End reasons**: the lifecycle events that end a session (logout, expiry by reason,
  revocation by reason, theft suspected) in the range.
- The range is ``[since, until)`` and reads only rows inside it; ``route`` keeps the
  visits that viewed that route (a page filter, as Plausible's).

``summary`` is the one entry point (the command, the service and the dashboard call it); it
runs in one transaction of the store, over three temporary tables: the rows with their
visit number, the visits, and the page views with their rank in the visit.
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

GAP: Final = 30 * 60.0
ACTIVE_WINDOW: Final = 5 * 60.0
HOUR: Final = 3600
DAY: Final = 86400
_ENDINGS: Final = (ev.LOGOUT, ev.EXPIRED, ev.REVOKED, ev.THEFT_SUSPECTED)
_TEMPS: Final = ("cc_hits", "cc_visits", "cc_pages", "cc_logins")


def _build(
    store: AnalyticsStore, q: Query, since: float, until: float, route: str | None, gap: float
) -> None:
    t = store.table
    for name in _TEMPS:
        q(store.drop_temp(name), ())
    q(
        store.temp_table(
            "cc_hits",
            "SELECT id, session, user_id, kind, name, at, browser, os, device, "
            "SUM(starts) OVER (PARTITION BY session ORDER BY at, id "
            "ROWS UNBOUNDED PRECEDING) AS visit FROM ("
            "SELECT id, session, user_id, kind, name, at, browser, os, device, "
            "CASE WHEN at - LAG(at) OVER (PARTITION BY session ORDER BY at, id) <= ? "
            "THEN 0 ELSE 1 END AS starts "
            f"FROM {t} WHERE kind IN ('{PAGE}', '{EVENT}') AND at >= ? AND at < ?) s",
        ),
        (gap, since, until),
    )
    if route is not None:
        q(
            "DELETE FROM cc_hits WHERE (session, visit) NOT IN "
            f"(SELECT session, visit FROM cc_hits WHERE kind = '{PAGE}' AND name = ?)",
            (route,),
        )
    q(
        store.temp_table(
            "cc_visits",
            "SELECT session, visit, MIN(at) AS started, MAX(at) AS ended, "
            f"SUM(CASE WHEN kind = '{PAGE}' THEN 1 ELSE 0 END) AS pages, "
            f"SUM(CASE WHEN kind = '{EVENT}' THEN 1 ELSE 0 END) AS events, "
            "MAX(user_id) AS user_id, MAX(browser) AS browser, MAX(os) AS os, "
            "MAX(device) AS device FROM cc_hits GROUP BY session, visit",
        ),
        (),
    )
    q(
        store.temp_table(
            "cc_pages",
            "SELECT session, visit, name, at, "
            "ROW_NUMBER() OVER (PARTITION BY session, visit ORDER BY at, id) AS rn, "
            "ROW_NUMBER() OVER (PARTITION BY session, visit ORDER BY at DESC, id DESC) AS rd, "
            "LAG(name) OVER (PARTITION BY session, visit ORDER BY at, id) AS prev "
            f"FROM cc_hits WHERE kind = '{PAGE}'",
        ),
        (),
    )
    q(
        store.temp_table(
            "cc_logins",
            "SELECT v.session, v.visit, MIN(l.at) - v.started AS wait FROM cc_visits v "
            f"JOIN {t} l ON l.session = v.session AND l.kind = '{LIFECYCLE}' "
            f"AND l.name = '{ev.LOGIN}' AND l.at >= v.started AND l.at <= v.ended + ? "
            "GROUP BY v.session, v.visit, v.started",
        ),
        (gap,),
    )


def _rank(p: int, n: int) -> int:
    return max(1, math.ceil(p * n / 100))


def _percentiles(q: Query, expr: str, table: str, n: int) -> tuple[float | None, float | None]:
    """The nearest-rank p50 and p90 of ``expr`` over ``table``'s ``n`` rows."""
    if n == 0:
        return None, None
    ranks = (_rank(50, n), _rank(90, n))
    found: dict[int, float] = dict(
        q(
            f"SELECT rn, d FROM (SELECT {expr} AS d, ROW_NUMBER() OVER "
            f"(ORDER BY {expr}) AS rn FROM {table}) x WHERE rn IN (?, ?)",
            ranks,
        )
    )
    return float(found[ranks[0]]), float(found[ranks[1]])


def _counted(rows: list[tuple[Any, ...]], *names: str) -> list[dict[str, Any]]:
    """Rows as objects; counts as ints (PostgreSQL's are ``int`` already, SQLite's too, but a
    driver may hand back ``Decimal``)."""
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
    """Visits, visitors (sessions) and page views per hour and per day (UTC), every bucket
    of the range present (zeros included), so a chart needs no gap filling."""
    out: dict[str, Any] = {}
    for label, size in (("hour", HOUR), ("day", DAY)):
        visits = {
            int(b): (int(v), int(s))
            for b, v, s in q(
                f"SELECT {store.bucket('started', size)} AS b, COUNT(*), "
                "COUNT(DISTINCT session) FROM cc_visits GROUP BY b",
                (),
            )
        }
        pages = {
            int(b): int(n)
            for b, n in q(
                f"SELECT {store.bucket('at', size)} AS b, COUNT(*) FROM cc_pages GROUP BY b",
                (),
            )
        }
        start = int(since // size) * size
        buckets = []
        for at in range(start, math.ceil(until / size) * size, size):
            v, s = visits.get(at, (0, 0))
            buckets.append(
                {
                    "start": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
                    "visits": v,
                    "visitors": s,
                    "page_views": pages.get(at, 0),
                }
            )
        out[label] = buckets
    return out


def _ranked(q: Query, select: str, names: tuple[str, ...], top: int) -> list[dict[str, Any]]:
    return _counted(q(select + " LIMIT ?", (top,)), *names)


def _lists(store: AnalyticsStore, q: Query, top: int) -> dict[str, Any]:
    """The ranked lists: pages, entries, exits, transitions, clients, custom events."""
    visit = "COUNT(DISTINCT session || ':' || visit)"
    doc: dict[str, Any] = {
        "top_pages": _ranked(
            q,
            f"SELECT name, COUNT(*) AS n, {visit} FROM cc_pages GROUP BY name "
            "ORDER BY n DESC, name",
            ("route", "views", "visits"),
            top,
        ),
        "entry_pages": _ranked(
            q,
            "SELECT name, COUNT(*) AS n FROM cc_pages WHERE rn = 1 GROUP BY name "
            "ORDER BY n DESC, name",
            ("route", "visits"),
            top,
        ),
        "exit_pages": _ranked(
            q,
            "SELECT name, COUNT(*) AS n FROM cc_pages WHERE rd = 1 GROUP BY name "
            "ORDER BY n DESC, name",
            ("route", "visits"),
            top,
        ),
        "transitions": _ranked(
            q,
            "SELECT prev, name, COUNT(*) AS n FROM cc_pages WHERE prev IS NOT NULL "
            "GROUP BY prev, name ORDER BY n DESC, prev, name",
            ("from", "to", "count"),
            top,
        ),
    }
    for key, column in (("browsers", "browser"), ("os", "os"), ("devices", "device")):
        doc[key] = _ranked(
            q,
            f"SELECT COALESCE({column}, 'Other') AS name, COUNT(*) AS n FROM cc_visits "
            "GROUP BY name ORDER BY n DESC, name",
            ("name", "visits"),
            top,
        )
    doc["events"] = _ranked(
        q,
        f"SELECT name, COUNT(*) AS n, {visit} FROM cc_hits WHERE kind = '{EVENT}' "
        "GROUP BY name ORDER BY n DESC, name",
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
    scoped = " AND session IN (SELECT session FROM cc_visits)" if route is not None else ""
    ends: dict[str, int] = {}
    for name, reason, count in q(
        f"SELECT name, reason, COUNT(*) FROM {store.table} "
        f"WHERE kind = '{LIFECYCLE}' AND name IN ({names}) AND at >= ? AND at < ?{scoped} "
        "GROUP BY name, reason",
        (since, until),
    ):
        label = _end_reason(name, reason)
        ends[label] = ends.get(label, 0) + int(count)
    ranked = sorted(ends.items(), key=lambda item: (-item[1], item[0]))
    return [{"reason": k, "count": v} for k, v in ranked]


def _totals(store: AnalyticsStore, q: Query, now: float, active_window: float) -> dict[str, Any]:
    """The headline figures of the visits table."""
    visits, pages, bounces, sessions, users = q(
        "SELECT COUNT(*), COALESCE(SUM(pages), 0), "
        "COALESCE(SUM(CASE WHEN pages = 1 AND events = 0 THEN 1 ELSE 0 END), 0), "
        "COUNT(DISTINCT session), COUNT(DISTINCT user_id) FROM cc_visits",
        (),
    )[0]
    visits = int(visits)
    p50, p90 = _percentiles(q, "ended - started", "cc_visits", visits)
    logins = int(q("SELECT COUNT(*) FROM cc_logins", ())[0][0])
    login_p50, _ = _percentiles(q, "wait", "cc_logins", logins)
    active = q(
        f"SELECT COUNT(DISTINCT session) FROM {store.table} "
        f"WHERE kind IN ('{PAGE}', '{EVENT}') AND at > ? AND at <= ?",
        (now - active_window, now),
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
    gap: float = GAP,
    active_window: float = ACTIVE_WINDOW,
    top: int = 10,
) -> dict[str, Any]:
    """Every figure of ``[since, until)`` (epoch seconds) as one JSON-ready document with
    the keys of ``KEYS``, in that order. ``now`` (default ``until``) anchors
    ``active_now``; ``top`` bounds each ranked list."""
    if until <= since:
        raise ValueError("until must be after since")
    now = until if now is None else now
    with store.session() as q:
        _build(store, q, since, until, route, gap)
        found = _totals(store, q, now, active_window)
        found.update(_lists(store, q, top))
        found["end_reasons"] = _ends(store, q, since, until, route)
        found["series"] = _series(store, q, since, until)
        for name in _TEMPS:
            q(store.drop_temp(name), ())
    return {key: found[key] for key in KEYS}
