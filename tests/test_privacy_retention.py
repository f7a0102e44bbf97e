"""Retention (GDPR Art. 5(1)(e)) on real databases with a frozen clock: the login history
goes after 30 days, security events after 12 months, each deleted in batches by the
registry's purge; the periods are settings; ``coatcheck purge`` and the service's periodic
task run the same purge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck.core.client import ClientInfo
from coatcheck.errors import ConfigError
from coatcheck.privacy.settings import DAY, PrivacySettings, RetentionPeriods
from tests.support.privacy import World, world


@pytest.fixture(params=["sqlite", "postgres"])
def w(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with world(request.param, tmp_path) as built:
        yield built


def holder(w: World, name: str) -> Any:
    [found] = [h for h in w.registry.holders if h.name == name]
    return found


def history(w: World) -> list[str]:
    return [e["event"] for e in holder(w, "activity").events_of("alice")]


def consent_reasons(w: World) -> list[str]:
    return [r["reason"] for r in holder(w, "consent").rows(user_id="alice")]


async def test_login_history_goes_after_30_days_security_events_after_12_months(
    w: World,
) -> None:
    # Alice grants analytics at her first login; her two later logins recall it.
    tokens = [
        w.log_in("alice", f"Agent/{n}", "203.0.113.9", grant=("analytics",) if n == 0 else ())
        for n in range(3)
    ]
    w.manager.revoke_user_sync("alice")  # one security event
    assert history(w) == ["session.login"] * 3 + ["session.revoked"]
    assert consent_reasons(w) == ["choice", "recalled", "recalled"]
    start = w.clock.now

    w.clock.now = start + 30 * DAY  # exactly 30 days: nothing is past it yet
    assert await w.registry.purge(batch=2) == {"activity": 0, "consent": 0}
    w.clock.now = start + 30 * DAY + 1
    assert await w.registry.purge(batch=2) == {"activity": 3, "consent": 0}  # batches: 2 + 1
    assert history(w) == ["session.revoked"]
    w.clock.now = start + 365 * DAY
    assert await w.registry.purge(batch=2) == {"activity": 0, "consent": 0}
    w.clock.now = start + 365 * DAY + 1
    assert await w.registry.purge(batch=2) == {"activity": 1, "consent": 0}
    assert history(w) == []
    # Proof of consent is kept 2192 days, but the user's latest row (the choice in force)
    # stays: the first two rows go.
    w.clock.now = start + 2192 * DAY
    assert await w.registry.purge(batch=2) == {"activity": 0, "consent": 0}
    w.clock.now = start + 2192 * DAY + 1
    assert await w.registry.purge(batch=2) == {"activity": 0, "consent": 2}
    assert consent_reasons(w) == ["recalled"]
    assert all(
        w.manager.load_sync(t, ClientInfo.from_raw("Agent/0", "203.0.113.9")).user_id is None
        for t in tokens
    )


def test_the_default_periods_are_30_days_12_months_6_years_and_13_months() -> None:
    periods = RetentionPeriods()
    assert periods.ended_sessions == 30 * 86400
    assert periods.security_events == 365 * 86400
    assert periods.consent == 2192 * 86400  # 6 x 365.2425 = 2191.455 days, rounded up
    assert periods.analytics == 395 * 86400  # 13 x 30.436875 = 395.68 days, rounded down


def test_each_period_is_a_setting_in_days() -> None:
    settings = PrivacySettings.from_env(
        {
            "COATCHECK_RETENTION_ENDED_SESSIONS": "7",
            "COATCHECK_RETENTION_SECURITY_EVENTS": "90",
            "COATCHECK_RETENTION_CONSENT": "2200",
            "COATCHECK_RETENTION_ANALYTICS": "30.5",
            "COATCHECK_RETENTION_INTERVAL": "600",
        }
    )
    assert settings.retention == RetentionPeriods(
        ended_sessions=7 * 86400,
        security_events=90 * 86400,
        consent=2200 * 86400,
        analytics=30.5 * 86400,
    )
    assert settings.retention_interval == 600
    for bad in ("soon", "0", "-1", "nan"):
        message = f"COATCHECK_RETENTION_ENDED_SESSIONS='{bad}' is not a"
        with pytest.raises(ConfigError, match=message):
            PrivacySettings.from_env({"COATCHECK_RETENTION_ENDED_SESSIONS": bad})


async def test_a_shorter_period_setting_purges_sooner(w: World) -> None:
    w.log_in("alice", "Agent/1", "203.0.113.9", grant=("analytics",))
    w.log_in("alice", "Agent/2", "203.0.113.9")  # recalls the grant: a second row
    periods = {"ended_sessions": 7 * DAY, "consent": 7 * DAY}
    w.registry.retention = {**(w.registry.retention or {}), **periods}
    w.clock.advance(7 * DAY)
    assert await w.registry.purge(batch=100) == {"activity": 0, "consent": 0}
    w.clock.advance(1)
    # Both logins; the grant's row, not the latest one (the choice in force).
    assert await w.registry.purge(batch=100) == {"activity": 2, "consent": 1}
    assert consent_reasons(w) == ["recalled"]
