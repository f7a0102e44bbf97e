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


def _build(store: AnalyticsStore, q: Query, since: float, until: float, route: str | None, gap: float) -> None:
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
            f"FROM {t} WHERE kind IN ('{PAGE}', '{EVENT}') AND at >= ? AND at < ?) s",  # noqa: S608
        ),
        (gap, since, until),
    )
    if route is not None:
        q(
            "DELETE FROM cc_hits WHERE (session, visit) NOT IN "
            f"(SELECT session, visit FROM cc_hits WHERE kind = '{PAGE}' AND name = ?)",  # noqa: S608
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
            f"FROM cc_hits WHERE kind = '{PAGE}'",  # noqa: S608
        ),
        (),
    )
    q(
        store.temp_table(
            "cc_logins",
            "SELECT v.session, v.visit, MIN(l.at) - v.started AS wait FROM cc_visits v "
            f"JOIN {t} l ON l.session = v.session AND l.kind = '{LIFECYCLE}' "  # noqa: S608
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
    found = dict(
        q(
            f"SELECT rn, d FROM (SELECT {expr} AS d, ROW_NUMBER() OVER "  # noqa: S608
            f"(ORDER BY {expr}) AS rn FROM {table}) x WHERE rn IN (?, ?)",
            ranks,
        )
    )
    return float(found[ranks[0]]), float(found[ranks[1]])


def _counted(rows: list[tuple[Any, ...]], *names: str) -> list[dict[str, Any]]:
    return [
        {n: (int(v) if isinstance(v, (int, float)) and n != "name" else v) for n, v in zip(names, r, strict=True)}
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
                f"SELECT {store.bucket('started', size)} AS b, COUNT(*), "  # noqa: S608
                "COUNT(DISTINCT session) FROM cc_visits GROUP BY b",
                (),
            )
        }
        pages = {
            int(b): int(n)
            for b, n in q(
                f"SELECT {store.bucket('at', size)} AS b, COUNT(*) FROM cc_pages GROUP BY b",  # noqa: S608
                (),
            )
        }
        start = int(since // size) * size
        buckets = []
        for at in range(start, int(math.ceil(until / size)) * size, size):
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
    the keys of ``KEYS``. ``now`` (default ``until``) anchors ``active_now``."""
    if until <= since:
        raise ValueError("until must be after since")
    now = until if now is None else now
    with store.session() as q:
        _build(store, q, since, until, route, gap)
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
            f"SELECT COUNT(DISTINCT session) FROM {store.table} "  # noqa: S608
            f"WHERE kind IN ('{PAGE}', '{EVENT}') AND at > ? AND at <= ?",
            (now - active_window, now),
        )[0][0]
        names = ", ".join(f"'{n}'" for n in _ENDINGS)
        scoped = " AND session IN (SELECT session FROM cc_visits)" if route is not None else ""
        ends: dict[str, int] = {}
        for name, reason, count in q(
            f"SELECT name, reason, COUNT(*) FROM {store.table} "  # noqa: S608
            f"WHERE kind = '{LIFECYCLE}' AND name IN ({names}) AND at >= ? AND at < ?{scoped} "
            "GROUP BY name, reason",
            (since, until),
        ):
            label = _end_reason(name, reason)
            ends[label] = ends.get(label, 0) + int(count)
        doc: dict[str, Any] = {
            "visits": visits,
            "visitors": {"sessions": int(sessions), "users": int(users)},
            "active_now": int(active),
            "bounce_rate": round(int(bounces) / visits, 4) if visits else 0.0,
            "pages_per_visit": round(int(pages) / visits, 2) if visits else 0.0,
            "duration_p50": p50,
            "duration_p90": p90,
            "top_pages": _counted(
                q(
                    "SELECT name, COUNT(*) AS n, COUNT(DISTINCT session || ':' || visit) "
                    "FROM cc_pages GROUP BY name ORDER BY n DESC, name LIMIT ?",
                    (top,),
                ),
                "route",
                "views",
                "visits",
            ),
            "entry_pages": _counted(
                q(
                    "SELECT name, COUNT(*) AS n FROM cc_pages WHERE rn = 1 "
                    "GROUP BY name ORDER BY n DESC, name LIMIT ?",
                    (top,),
                ),
                "route",
                "visits",
            ),
            "exit_pages": _counted(
                q(
                    "SELECT name, COUNT(*) AS n FROM cc_pages WHERE rd = 1 "
                    "GROUP BY name ORDER BY n DESC, name LIMIT ?",
                    (top,),
                ),
                "route",
                "visits",
            ),
            "transitions": _counted(
                q(
                    "SELECT prev, name, COUNT(*) AS n FROM cc_pages WHERE prev IS NOT NULL "
                    "GROUP BY prev, name ORDER BY n DESC, prev, name LIMIT ?",
                    (top,),
                ),
                "from",
                "to",
                "count",
            ),
            "login_share": round(logins / visits, 4) if visits else 0.0,
            "time_to_login_p50": login_p50,
            "end_reasons": [
                {"reason": k, "count": v} for k, v in sorted(ends.items(), key=lambda i: (-i[1], i[0]))
            ],
        }
        for key, column in (("browsers", "browser"), ("os", "os"), ("devices", "device")):
            doc[key] = _counted(
                q(
                    f"SELECT COALESCE({column}, 'Other') AS name, COUNT(*) AS n FROM cc_visits "  # noqa: S608
                    "GROUP BY name ORDER BY n DESC, name",
                    (),
                ),
                "name",
                "visits",
            )
        doc["events"] = _counted(
            q(
                "SELECT name, COUNT(*) AS n, COUNT(DISTINCT session || ':' || visit) "
                f"FROM cc_hits WHERE kind = '{EVENT}' GROUP BY name ORDER BY n DESC, name LIMIT ?",  # noqa: S608
                (top,),
            ),
            "name",
            "count",
            "visits",
        )
        doc["series"] = _series(store, q, since, until)
        for name in _TEMPS:
            q(store.drop_temp(name), ())
    return doc
