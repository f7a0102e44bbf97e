"""The dashboard's figures from what the service runs: the analytics summary adapted to the
charts' shapes, consent shares from the ledger, and the default wiring of create_app."""

from __future__ import annotations

import asyncio
import calendar
from pathlib import Path
from typing import Any

from coatcheck.analytics.rows import LIFECYCLE, PAGE, Hit
from coatcheck.analytics.setup import Analytics
from coatcheck.analytics.sqlite_store import SQLiteAnalytics
from coatcheck.privacy.ledger import ConsentLedger
from coatcheck.service.admin import RecentEvents
from coatcheck.service.admin.providers import (
    ServiceData,
    adapt_summary,
    consent_shares,
    service_data,
)


def test_the_summary_is_adapted_to_the_charts_shapes() -> None:
    document = {
        "visits": 4,
        "visitors": {"sessions": 3, "users": 1},
        "series": {
            "hour": [{"start": "2026-12-07T10:00:00Z", "visits": 2, "visitors": 2}],
            "day": [{"start": "2026-12-07T00:00:00Z", "visits": 4, "visitors": 3}],
        },
    }
    out = adapt_summary(document)
    assert out["visits"] == 4
    assert out["visitors"] == 3 and out["visitors_users"] == 1
    ten = calendar.timegm((2026, 12, 7, 10, 0, 0))
    midnight = calendar.timegm((2026, 12, 7, 0, 0, 0))
    assert out["series"]["hour"] == [{"start": ten, "visits": 2, "visitors": 2, "active": 2}]
    assert out["series"]["day"][0]["start"] == midnight
    assert document["visitors"] == {"sessions": 3, "users": 1}  # the input is kept


def row(handle: str, at: float, method: str, allowed: list[str]) -> dict[str, Any]:
    return {"handle": handle, "recorded_at": at, "method": method, "allowed": allowed}


def test_consent_shares_count_each_sessions_latest_choice_in_the_range() -> None:
    rows = [
        row("h1", 100.0, "accept_all", ["necessary", "functional", "analytics", "marketing"]),
        row("h2", 110.0, "reject_all", ["necessary"]),
        row("h3", 120.0, "gpc", ["necessary"]),
        row("h3", 130.0, "custom", ["necessary", "functional", "analytics"]),
        row("h4", 500.0, "accept_all", ["necessary", "analytics"]),  # outside the range
    ]
    shares = consent_shares(rows, 0.0, 200.0)
    # Three sessions: h1 (all), h2 (none), h3 (functional and analytics, after its GPC row).
    assert shares["sessions"] == 3
    assert shares["categories"] == {"functional": 2 / 3, "analytics": 2 / 3, "marketing": 1 / 3}
    assert shares["gpc_share"] == 1 / 3
    assert consent_shares([], 0.0, 1.0) == {
        "sessions": 0,
        "categories": {"functional": 0.0, "analytics": 0.0, "marketing": 0.0},
        "gpc_share": 0.0,
    }


def test_service_data_reads_a_real_analytics_store_and_ledger(tmp_path: Path) -> None:
    store = SQLiteAnalytics(str(tmp_path / "analytics.db"))
    store.write_batch(
        [
            Hit(PAGE, 1000.0, "s1", "/", method="GET", status=200),
            Hit(PAGE, 1010.0, "s1", "/cart", method="GET", status=200),
            Hit(LIFECYCLE, 1020.0, "s1", "session.login", user_id="u1"),
            Hit(PAGE, 2000.0, "s2", "/", method="GET", status=200),
        ]
    )
    analytics = Analytics.build(store)
    ledger = ConsentLedger(f"sqlite:///{tmp_path / 'app.db'}")
    data = ServiceData(analytics, ledger, RecentEvents())
    try:
        summary = asyncio.run(data.summary(0.0, 10_000.0))
        assert summary is not None
        # Two sessions, one visit each (the gap between them is 1,000 s, in other
        # sessions); s1 saw two pages, s2 one (a bounce).
        assert summary["visits"] == 2
        assert summary["visitors"] == 2
        assert summary["bounce_rate"] == 0.5
        consent = asyncio.run(data.consent(0.0, 10_000.0))
        assert consent == {
            "sessions": 0,
            "categories": {"functional": 0.0, "analytics": 0.0, "marketing": 0.0},
            "gpc_share": 0.0,
        }
    finally:
        analytics.close()


def test_without_analytics_or_a_ledger_the_dashboard_keeps_its_local_data() -> None:
    class Bare:
        analytics = None
        privacy = None

    assert service_data(Bare(), RecentEvents()) is None
