"""The dashboard's default figures: the bounded in-memory sink of security events and the
provider that has nothing else ("not configured")."""

from __future__ import annotations

from coatcheck.core import events as ev
from coatcheck.core.events import SessionEvent
from coatcheck.service.admin import DashboardData, LocalData, RecentEvents


def test_recent_events_keeps_the_last_500_security_events_newest_first() -> None:
    recent = RecentEvents()
    for n in range(501):
        recent(SessionEvent(ev.THEFT_SUSPECTED, float(n), handle=f"h{n}"))
    recent(SessionEvent(ev.LOGIN, 999.0))  # not a security event: not kept
    recent(SessionEvent(ev.CREATED, 1000.0))
    kept = recent.latest(1000)
    assert len(kept) == 500
    assert (kept[0].at, kept[-1].at) == (500.0, 1.0)  # event 0 fell out
    assert [e.handle for e in recent.latest(2)] == ["h500", "h499"]


def test_only_the_three_security_events_are_kept() -> None:
    recent = RecentEvents()
    names = [ev.CLIENT_CHANGED, ev.LIMIT_REACHED, ev.THEFT_SUSPECTED, ev.REVOKED, ev.REJECTED]
    for at, name in enumerate(names):
        recent(SessionEvent(name, float(at)))
    assert [e.name for e in recent.latest(10)] == [
        ev.THEFT_SUSPECTED,
        ev.LIMIT_REACHED,
        ev.CLIENT_CHANGED,
    ]


async def test_the_default_provider_has_events_and_nothing_else() -> None:
    recent = RecentEvents()
    recent(SessionEvent(ev.CLIENT_CHANGED, 5.0, user_id="alice"))
    data = LocalData(recent)
    assert isinstance(data, DashboardData)
    assert await data.summary(0.0, 10.0) is None
    assert await data.consent(0.0, 10.0) is None
    assert [e.user_id for e in await data.security_events(10)] == ["alice"]
