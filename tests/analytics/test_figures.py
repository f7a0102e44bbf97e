"""A known week of visits, and every figure of ``summary`` checked against values worked
out by hand here (never by calling the code under test), on SQLite and PostgreSQL.

The week starts Monday 2026-03-02 00:00 UTC. Four sessions:

- A (Chrome, Windows, desktop): Monday 10:00 ``/``, 10:02 ``/products/{id}``, logs in as
  u1 at 10:04:30, 10:05 ``/checkout``, 10:06 event ``checkout.started``: visit A1, 3 pages
  and an event, 360 s, login after 270 s. Then 11:00 ``/products/{id}`` and 11:03 ``/cart``
  (54 min later: a new visit A2, 180 s). Logged out at 11:04.
- B (Firefox, Linux, desktop): Tuesday 09:00 ``/``, 09:10 ``/about``, 09:39 ``/`` (29 min:
  the same visit B1, 2340 s); 10:20 ``/about`` (41 min: visit B2, a bounce). Expired
  (idle) on Wednesday 12:00.
- C (Safari, macOS, desktop): Wednesday 14:00 ``/products/{id}``, logs in as u2 at
  14:00:10, event ``newsletter.signup`` at 14:00:30: visit C1, one page but an event, so
  not a bounce, 30 s, login after 10 s.
- D (Chrome, Android, mobile): Sunday 23:50 ``/``: visit D1, a bounce. Revoked at 23:55.
- Outside the range (never counted): E on the Sunday before, F on the Monday after.
"""

from __future__ import annotations

from datetime import UTC, datetime

from coatcheck.analytics.figures import KEYS, summary
from coatcheck.analytics.rows import EVENT, LIFECYCLE, PAGE, Hit
from coatcheck.analytics.store import AnalyticsStore

T0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
DAY = 86400.0
WEEK_END = T0 + 7 * DAY
CHROME_WIN = {"browser": "Chrome", "os": "Windows", "device": "desktop"}
FIREFOX = {"browser": "Firefox", "os": "Linux", "device": "desktop"}
SAFARI = {"browser": "Safari", "os": "macOS", "device": "desktop"}
CHROME_PHONE = {"browser": "Chrome", "os": "Android", "device": "mobile"}


def at(day: int, hour: int, minute: int, second: int = 0) -> float:
    return T0 + day * DAY + hour * 3600 + minute * 60 + second


def page(
    when: float, session: str, route: str, agent: dict[str, str], user: str | None = None
) -> Hit:
    return Hit(PAGE, when, session, route, user_id=user, method="GET", status=200, **agent)


def event(
    when: float, session: str, name: str, agent: dict[str, str], user: str | None = None
) -> Hit:
    return Hit(EVENT, when, session, name, user_id=user, **agent)


def life(
    when: float, session: str, name: str, user: str | None = None, reason: str | None = None
) -> Hit:
    return Hit(LIFECYCLE, when, session, name, user_id=user, reason=reason)


WEEK = [
    page(at(0, 10, 0), "A", "/", CHROME_WIN),
    page(at(0, 10, 2), "A", "/products/{id}", CHROME_WIN),
    life(at(0, 10, 4, 30), "A", "session.login", "u1"),
    page(at(0, 10, 5), "A", "/checkout", CHROME_WIN, "u1"),
    event(at(0, 10, 6), "A", "checkout.started", CHROME_WIN, "u1"),
    page(at(0, 11, 0), "A", "/products/{id}", CHROME_WIN, "u1"),
    page(at(0, 11, 3), "A", "/cart", CHROME_WIN, "u1"),
    life(at(0, 11, 4), "A", "session.logout", "u1"),
    page(at(1, 9, 0), "B", "/", FIREFOX),
    page(at(1, 9, 10), "B", "/about", FIREFOX),
    page(at(1, 9, 39), "B", "/", FIREFOX),
    page(at(1, 10, 20), "B", "/about", FIREFOX),
    life(at(2, 12, 0), "B", "session.expired", reason="idle"),
    page(at(2, 14, 0), "C", "/products/{id}", SAFARI, "u2"),
    life(at(2, 14, 0, 10), "C", "session.login", "u2"),
    event(at(2, 14, 0, 30), "C", "newsletter.signup", SAFARI, "u2"),
    page(at(6, 23, 50), "D", "/", CHROME_PHONE),
    life(at(6, 23, 55), "D", "session.revoked"),
    page(at(-1, 12, 0), "E", "/", CHROME_WIN),
    page(at(7, 0, 1), "F", "/", CHROME_WIN),
]
NOW = at(6, 23, 52)
"""Two minutes after D's page view: D is the one session active now."""


def week(store: AnalyticsStore) -> AnalyticsStore:
    store.write_batch(WEEK)
    return store


def test_every_figure_of_the_week(store: AnalyticsStore) -> None:
    doc = summary(week(store), T0, WEEK_END, now=NOW)
    assert list(doc) == list(KEYS)
    assert doc["visits"] == 6  # A1, A2, B1, B2, C1, D1
    assert doc["visitors"] == {"sessions": 4, "users": 2}  # A B C D; u1 u2
    assert doc["active_now"] == 1  # D
    assert doc["bounce_rate"] == 0.3333  # B2 and D1 of 6
    assert doc["pages_per_visit"] == 1.83  # 3 + 2 + 3 + 1 + 1 + 1 = 11 pages / 6
    # durations sorted: 0 (B2), 0 (D1), 30 (C1), 180 (A2), 360 (A1), 2340 (B1)
    assert doc["duration_p50"] == 30.0  # rank ceil(0.5 * 6) = 3
    assert doc["duration_p90"] == 2340.0  # rank ceil(0.9 * 6) = 6
    assert doc["top_pages"] == [
        {"route": "/", "views": 4},
        {"route": "/products/{id}", "views": 3},
        {"route": "/about", "views": 2},
        {"route": "/cart", "views": 1},
        {"route": "/checkout", "views": 1},
    ]
    assert doc["entry_pages"] == [
        {"route": "/", "visits": 3},
        {"route": "/products/{id}", "visits": 2},
        {"route": "/about", "visits": 1},
    ]
    assert doc["exit_pages"] == [
        {"route": "/", "visits": 2},
        {"route": "/about", "visits": 1},
        {"route": "/cart", "visits": 1},
        {"route": "/checkout", "visits": 1},
        {"route": "/products/{id}", "visits": 1},
    ]
    assert doc["transitions"] == [
        {"from": "/", "to": "/about", "count": 1},
        {"from": "/", "to": "/products/{id}", "count": 1},
        {"from": "/about", "to": "/", "count": 1},
        {"from": "/products/{id}", "to": "/cart", "count": 1},
        {"from": "/products/{id}", "to": "/checkout", "count": 1},
    ]
    assert doc["login_share"] == 0.3333  # A1 and C1 of 6
    assert doc["time_to_login_p50"] == 10.0  # sorted 10 (C1), 270 (A1): rank 1
    assert doc["end_reasons"] == [
        {"reason": "expired_idle", "count": 1},
        {"reason": "logout", "count": 1},
        {"reason": "revoked", "count": 1},
    ]
    assert doc["browsers"] == [
        {"name": "Chrome", "visits": 3},
        {"name": "Firefox", "visits": 2},
        {"name": "Safari", "visits": 1},
    ]
    assert doc["os"] == [
        {"name": "Linux", "visits": 2},
        {"name": "Windows", "visits": 2},
        {"name": "Android", "visits": 1},
        {"name": "macOS", "visits": 1},
    ]
    assert doc["devices"] == [{"name": "desktop", "visits": 5}, {"name": "mobile", "visits": 1}]
    assert doc["events"] == [
        {"name": "checkout.started", "count": 1},
        {"name": "newsletter.signup", "count": 1},
    ]


def test_series_per_day_and_per_hour(store: AnalyticsStore) -> None:
    series = summary(week(store), T0, WEEK_END, now=NOW)["series"]
    days = [(d["start"], d["visits"], d["visitors"], d["page_views"]) for d in series["day"]]
    assert days == [
        ("2026-03-02T00:00:00Z", 2, 1, 5),  # A1, A2
        ("2026-03-03T00:00:00Z", 2, 1, 4),  # B1, B2
        ("2026-03-04T00:00:00Z", 1, 1, 1),  # C1
        ("2026-03-05T00:00:00Z", 0, 0, 0),
        ("2026-03-06T00:00:00Z", 0, 0, 0),
        ("2026-03-07T00:00:00Z", 0, 0, 0),
        ("2026-03-08T00:00:00Z", 1, 1, 1),  # D1
    ]
    hours = {h["start"]: (h["visits"], h["page_views"]) for h in series["hour"]}
    assert len(series["hour"]) == 7 * 24
    assert hours["2026-03-02T10:00:00Z"] == (1, 3)  # A1
    assert hours["2026-03-02T11:00:00Z"] == (1, 2)  # A2
    assert hours["2026-03-03T09:00:00Z"] == (1, 3)  # B1: 09:00, 09:10, 09:39
    assert hours["2026-03-03T10:00:00Z"] == (1, 1)  # B2
    assert hours["2026-03-08T23:00:00Z"] == (1, 1)  # D1
    assert sum(v for v, _ in hours.values()) == 6


def test_a_route_keeps_the_visits_that_viewed_it(store: AnalyticsStore) -> None:
    doc = summary(week(store), T0, WEEK_END, "/about", now=NOW)
    assert doc["visits"] == 2  # B1, B2
    assert doc["visitors"] == {"sessions": 1, "users": 0}
    assert doc["bounce_rate"] == 0.5  # B2
    assert doc["pages_per_visit"] == 2.0  # 3 + 1 pages
    assert doc["end_reasons"] == [{"reason": "expired_idle", "count": 1}]
    assert doc["entry_pages"] == [{"route": "/", "visits": 1}, {"route": "/about", "visits": 1}]


def test_the_inactivity_gap_is_a_setting_of_the_store(store: AnalyticsStore) -> None:
    store.visit_gap = 3600.0  # ``?visit_gap=3600`` in the store's URL
    doc = summary(week(store), T0, WEEK_END, now=NOW)
    # A1 + A2 (54 min apart) and B1 + B2 (41 min apart) merge under an hour's gap.
    assert doc["visits"] == 4
    assert doc["bounce_rate"] == 0.25  # D1 only
    assert doc["duration_p90"] == 4800.0  # B: 09:00 to 10:20; sorted 0, 30, 3780, 4800
    assert doc["duration_p50"] == 30.0  # rank ceil(0.5 * 4) = 2


def test_a_date_range_reads_only_its_rows(store: AnalyticsStore) -> None:
    doc = summary(week(store), at(1, 0, 0), at(2, 0, 0), now=NOW)
    assert doc["visits"] == 2  # B1, B2 (Tuesday)
    assert doc["end_reasons"] == []  # B expired on Wednesday
    empty = summary(store, at(3, 0, 0), at(5, 0, 0), now=NOW)
    assert empty["visits"] == 0
    assert empty["duration_p50"] is None
    assert empty["bounce_rate"] == 0.0
    assert empty["login_share"] == 0.0
    assert empty["time_to_login_p50"] is None


def test_a_session_that_continues_past_the_gap_is_two_visits_with_their_own_entries(
    store: AnalyticsStore,
) -> None:
    store.write_batch([page(at(0, 8, 0), "G", "/a", CHROME_WIN)])
    store.write_batch([page(at(0, 8, 30), "G", "/b", CHROME_WIN)])  # 30 min: the same visit
    store.write_batch([page(at(0, 9, 0, 1), "G", "/c", CHROME_WIN)])  # 30 min 1 s: a new one
    doc = summary(store, T0, WEEK_END)
    assert doc["visits"] == 2
    assert doc["entry_pages"] == [{"route": "/a", "visits": 1}, {"route": "/c", "visits": 1}]
    assert doc["transitions"] == [{"from": "/a", "to": "/b", "count": 1}]


def test_rows_written_out_of_order_in_other_batches_find_their_visit(store: AnalyticsStore) -> None:
    # Two nodes' writers may deliver a visit's rows late and in any order.
    store.write_batch([page(at(0, 8, 10), "H", "/b", CHROME_WIN)])
    store.write_batch([page(at(0, 8, 0), "H", "/a", CHROME_WIN)])  # earlier, written later
    store.write_batch([event(at(0, 8, 12), "H", "cart.added", CHROME_WIN)])
    doc = summary(store, T0, WEEK_END)
    assert doc["visits"] == 1
    assert doc["duration_p50"] == 720.0  # 08:00 to 08:12
    assert doc["bounce_rate"] == 0.0


def test_a_range_off_the_hour_counts_its_partial_hours_from_the_rows(store: AnalyticsStore) -> None:
    # Monday 10:01 to Tuesday 09:05: the hours 11:00 .. 09:00 come from the hourly counts,
    # 10:01 .. 11:00 and 09:00 .. 09:05 from the rows.
    doc = summary(week(store), at(0, 10, 1), at(1, 9, 5), now=NOW)
    assert doc["visits"] == 2  # A2 (11:00) and B1 (09:00) started in it; A1 (10:00) did not
    # page views made in it: A 10:02, 10:05, 11:00, 11:03 and B 09:00
    assert doc["top_pages"] == [
        {"route": "/products/{id}", "views": 2},
        {"route": "/", "views": 1},
        {"route": "/cart", "views": 1},
        {"route": "/checkout", "views": 1},
    ]
    assert doc["transitions"] == [
        {"from": "/", "to": "/products/{id}", "count": 1},  # 10:02, after 10:00
        {"from": "/products/{id}", "to": "/cart", "count": 1},  # 11:03
        {"from": "/products/{id}", "to": "/checkout", "count": 1},  # 10:05
    ]
    assert doc["events"] == [{"name": "checkout.started", "count": 1}]  # 10:06
