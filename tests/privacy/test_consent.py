"""Consent on the server: categories, choices, GPC, revisions, and the events a commit
announces. Pure rules on a Session, then through the engine over a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import events as ev
from coatcheck.core.client import ClientInfo
from coatcheck.core.consent import ConsentPolicy, ConsentState
from coatcheck.core.events import MemorySink
from coatcheck.core.session import Session
from coatcheck.errors import ConfigError, ConsentError
from coatcheck.stores import SQLiteStore
from tests.support.clock import FakeClock
from tests.support.user_agents import FIREFOX_LINUX

NOW = 1_800_000_000.0


def fresh(policy: ConsentPolicy | None = None) -> Session:
    session = Session(None, NOW)
    if policy is not None:
        session.consent_policy = policy
    return session


def test_necessary_is_always_on_and_the_rest_off_until_granted() -> None:
    consent = fresh().consent
    assert consent.allows("necessary")
    assert [consent.allows(c) for c in ("functional", "analytics", "marketing")] == [False] * 3
    assert consent.state is None and consent.needs_prompt
    with pytest.raises(ConsentError, match="cannot be refused"):
        consent.deny("necessary")
    with pytest.raises(ConsentError, match="unknown consent category 'analytic'"):
        consent.allows("analytic")
    with pytest.raises(ConsentError, match="unknown consent method"):
        consent.set({"analytics": True}, method="banner")


def test_grant_deny_and_withdrawal_are_recorded_as_changes() -> None:
    session = fresh()
    consent = session.consent
    consent.grant("analytics", "functional")
    consent.deny("analytics")
    assert consent.allows("functional") and not consent.allows("analytics")
    first, second = session.consent_changes
    assert (first.granted, first.denied, first.withdrawn) == (("analytics", "functional"), (), ())
    assert (second.granted, second.denied, second.withdrawn) == ((), ("analytics",), ("analytics",))
    assert second.allowed == ("functional",) and second.refused == ("analytics",)
    state = consent.state
    assert state is not None
    assert (state.method, state.revision, state.at) == ("custom", 1, NOW)
    assert state.categories(consent.policy) == {
        "necessary": True,
        "functional": True,
        "analytics": False,
        "marketing": False,
    }
    # Kept in the metadata, small and typed; a commit writes it.
    assert session.meta["consent"] == {
        "g": ["functional"],
        "d": ["analytics"],
        "r": 1,
        "at": NOW,
        "m": "custom",
    }
    assert session.intents.meta_changed and session.pending


def test_accept_all_and_reject_all() -> None:
    consent = fresh().consent
    consent.accept_all()
    assert all(consent.allows(c) for c in ("functional", "analytics", "marketing"))
    assert not consent.needs_prompt
    consent.reject_all()
    assert not any(consent.allows(c) for c in ("functional", "analytics", "marketing"))
    state = consent.state
    assert state is not None and state.method == "reject_all"


def test_app_categories_and_a_new_revision_asks_again() -> None:
    config = SessionConfig(consent_categories=("personalisation",), consent_revision=2)
    policy = ConsentPolicy.of(config)
    assert policy.categories[-1] == "personalisation" and policy.revision == 2
    session = fresh(policy)
    assert not session.consent.allows("personalisation")
    session.consent.grant("personalisation")
    assert session.consent.allows("personalisation")
    # A choice made under revision 1 is still in force, but the visitor is asked again.
    old = ConsentState(frozenset({"necessary", "analytics"}), frozenset(), 1, NOW - 10, "custom")
    session.set_meta("consent", old.to_meta())
    assert session.consent.allows("analytics") and session.consent.needs_prompt


def test_privacy_settings_are_checked_at_start_up() -> None:
    with pytest.raises(ConfigError, match="standard category"):
        SessionConfig(consent_categories=("analytics",))
    with pytest.raises(ConfigError, match="not a category name"):
        SessionConfig(consent_categories=("Ads!",))
    with pytest.raises(ConfigError, match="consent_revision"):
        SessionConfig(consent_revision=0)
    with pytest.raises(ConfigError, match="ip_truncation"):
        SessionConfig(ip_truncation="24")
    with pytest.raises(ConfigError, match="at least 16"):
        SessionConfig(user_agent_key="short")
    assert "user_agent_key" not in repr(SessionConfig(user_agent_key="k" * 16))


def test_a_malformed_stored_state_grants_nothing() -> None:
    session = fresh()
    session.set_meta("consent", {"g": ["analytics"], "d": [], "r": "1", "at": NOW, "m": "custom"})
    assert session.consent.state is None and not session.consent.allows("analytics")


def test_gpc_refuses_analytics_and_marketing_and_accept_all_cannot_undo_it() -> None:
    session = fresh()
    consent = session.consent
    consent.honour_gpc()
    state = consent.state
    assert state is not None and (state.method, state.gpc) == ("gpc", True)
    assert not consent.allows("analytics") and not consent.allows("marketing")
    assert consent.needs_prompt  # GPC answered analytics and marketing, not functional
    consent.honour_gpc()  # once per session
    assert len(session.consent_changes) == 1
    consent.accept_all()  # a banner click
    assert consent.allows("functional")
    assert not consent.allows("analytics") and not consent.allows("marketing")
    consent.grant("analytics")  # the explicit grant
    assert consent.allows("analytics") and not consent.allows("marketing")
    consent.honour_gpc()  # the next request's signal does not undo the explicit grant
    assert consent.allows("analytics")


def test_gpc_alone_starts_no_session_on_a_first_visit(tmp_path: Path) -> None:
    sink = MemorySink()
    manager = SessionManager(SQLiteStore(tmp_path / "s.db"), events=[sink])
    session = manager.load_sync(None, ClientInfo(FIREFOX_LINUX, "203.0.113.9", gpc=True))
    assert not session.consent.allows("analytics")
    result = manager.commit_sync(session)
    assert result.token is None and sink.events == []


def test_the_engine_announces_consent_after_the_commit(tmp_path: Path) -> None:
    sink = MemorySink()
    clock = FakeClock(NOW)
    manager = SessionManager(SQLiteStore(tmp_path / "s.db"), clock=clock, events=[sink])
    gpc = ClientInfo(FIREFOX_LINUX, "203.0.113.9", gpc=True)
    session = manager.load_sync(None, gpc)
    session["cart"] = ["coat"]
    token = manager.commit_sync(session).token
    assert token is not None
    (created, refused) = sink.events
    assert (created.name, refused.name) == (ev.CREATED, ev.CONSENT)
    assert refused.handle == session.handle and refused.user_id is None
    assert refused.detail == {
        "granted": [],
        "denied": ["analytics", "marketing"],
        "withdrawn": [],
        "allowed": [],
        "refused": ["analytics", "marketing"],
        "method": "gpc",
        "revision": 1,
        "consent_at": NOW,
        "reason": "choice",
    }
    assert token not in repr(refused)
    # The next request: the refusal was stored, so the signal is not recorded again.
    clock.advance(5)
    again = manager.load_sync(token, ClientInfo(FIREFOX_LINUX, "203.0.113.9", gpc=True))
    assert not again.pending and not again.consent.allows("analytics")
    again.consent.grant("analytics", method="api")
    manager.commit_sync(again)
    assert sink.events[-1].detail["granted"] == ["analytics"]
    assert sink.events[-1].detail["method"] == "api"
    stored = manager.load_sync(token, ClientInfo(FIREFOX_LINUX, "203.0.113.9"))
    assert stored.consent.allows("analytics") and not stored.consent.allows("marketing")


def test_consent_follows_the_visitor_into_the_logged_in_session(tmp_path: Path) -> None:
    sink = MemorySink()
    manager = SessionManager(SQLiteStore(tmp_path / "s.db"), events=[sink])
    session = manager.load_sync(None)
    session.consent.accept_all()
    token = manager.commit_sync(session).token
    visitor = manager.load_sync(token)
    visitor.login("alice")
    new_token = manager.commit_sync(visitor).token
    assert new_token is not None
    logged_in = manager.load_sync(new_token)
    assert logged_in.user_id == "alice" and logged_in.consent.allows("marketing")
    login_row = sink.events[-1]
    assert (login_row.name, login_row.user_id, login_row.detail["reason"]) == (
        ev.CONSENT,
        "alice",
        "login",
    )
    assert login_row.handle == logged_in.handle
