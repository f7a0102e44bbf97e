"""The pure policy: validity and commit plans as plain data, no I/O."""

from __future__ import annotations

import pytest

from coatcheck import SessionConfig
from coatcheck.core.policy import Action, CookieAction, Verdict, check, deadline, plan_commit
from coatcheck.core.record import SessionRecord
from coatcheck.core.session import Session

NOW = 1_000_000.0
CONFIG = SessionConfig()


def record(**overrides: object) -> SessionRecord:
    values: dict[str, object] = {
        "key": "k" * 64,
        "handle": "h",
        "data": {"n": 1},
        "created_at": NOW,
        "last_seen_at": NOW,
        "expires_at": NOW + CONFIG.idle_timeout,
        "absolute_at": NOW + CONFIG.absolute_timeout,
    }
    values.update(overrides)
    return SessionRecord(**values)  # type: ignore[arg-type]


def test_check_verdicts() -> None:
    r = record()
    assert check(None, NOW) is Verdict.UNKNOWN
    assert check(r, NOW) is Verdict.VALID
    assert check(r, r.expires_at) is Verdict.IDLE_EXPIRED
    late = record(expires_at=NOW + 10, absolute_at=NOW + 5)
    assert check(late, NOW + 6) is Verdict.ABSOLUTE_EXPIRED


def test_deadline_is_capped_by_absolute_and_remember_has_no_idle_limit() -> None:
    assert deadline(CONFIG, now=NOW, absolute_at=NOW + 10, remember=False) == NOW + 10
    assert deadline(CONFIG, now=NOW, absolute_at=NOW + 1e6, remember=False) == (
        NOW + CONFIG.idle_timeout
    )
    assert deadline(CONFIG, now=NOW, absolute_at=NOW + 1e6, remember=True) == NOW + 1e6


def test_empty_new_session_is_not_stored() -> None:
    plan = plan_commit(Session(None, now=NOW), CONFIG, NOW, "h")
    assert plan.action is Action.NOTHING
    assert plan.cookie is CookieAction.NONE


def test_a_kept_empty_session_is_stored_and_a_kept_logout_replaces() -> None:
    s = Session(None, now=NOW)
    s.keep()
    plan = plan_commit(s, CONFIG, NOW, "h")
    assert (plan.action, plan.cookie) == (Action.CREATE, CookieAction.SET)
    assert plan.record is not None and plan.record.data == {} and plan.record.user_id is None
    assert plan.record.expires_at == NOW + CONFIG.idle_timeout

    ended = Session(record(user_id="alice"), now=NOW)
    ended.logout()
    ended.keep()
    plan = plan_commit(ended, CONFIG, NOW, "new-handle")
    assert plan.action is Action.REPLACE
    assert plan.record is not None and plan.record.data == {}
    assert (plan.record.user_id, plan.record.handle) == (None, "new-handle")


def test_a_deadline_cap_brings_every_written_deadline_forward() -> None:
    idle, absolute = CONFIG.idle_timeout, CONFIG.absolute_timeout
    new = Session(None, now=NOW)
    new["a"] = 1
    new.cap_deadline(NOW + 300)
    created = plan_commit(new, CONFIG, NOW, "h").record
    assert created is not None
    assert (created.expires_at, created.absolute_at) == (NOW + 300, NOW + absolute)

    changed = Session(record(), now=NOW + 10)
    changed["n"] = 2
    changed.cap_deadline(NOW + 10 + 300)
    patch = plan_commit(changed, CONFIG, NOW + 10).patch
    assert patch is not None and patch.fields["expires_at"] == NOW + 10 + 300

    later = Session(record(), now=NOW + 10)  # a cap past the idle deadline: idle wins
    later["n"] = 2
    later.cap_deadline(NOW + 10 + idle + 50)
    patch = plan_commit(later, CONFIG, NOW + 10).patch
    assert patch is not None and patch.fields["expires_at"] == NOW + 10 + idle

    renamed = Session(record(), now=NOW + 10)
    renamed.regenerate()
    renamed.cap_deadline(NOW + 70)
    plan = plan_commit(renamed, CONFIG, NOW + 10)
    assert plan.action is Action.RENAME
    assert plan.patch is not None and plan.patch.fields["expires_at"] == NOW + 70


def test_a_cap_that_shortens_the_stored_deadline_is_written_alone() -> None:
    untouched = Session(record(), now=NOW + 1)
    untouched.cap_deadline(NOW + 120)  # before the stored NOW + idle_timeout
    plan = plan_commit(untouched, CONFIG, NOW + 1)
    assert plan.action is Action.TOUCH
    assert plan.patch is not None and plan.patch.fields["expires_at"] == NOW + 120
    assert not plan.patch.touches_data

    looser = Session(record(), now=NOW + 1)
    looser.cap_deadline(NOW + 1e6)  # after the stored deadline: nothing to write
    assert plan_commit(looser, CONFIG, NOW + 1).action is Action.NOTHING


def test_a_passed_cap_ends_the_session_and_never_stores_a_new_one() -> None:
    stored = Session(record(user_id="alice"), now=NOW + 5)
    stored["n"] = 3
    stored.cap_deadline(NOW)
    plan = plan_commit(stored, CONFIG, NOW + 5)
    assert (plan.action, plan.cookie, plan.events) == (
        Action.DELETE,
        CookieAction.CLEAR,
        ("session.expired",),
    )
    new = Session(None, now=NOW)
    new["a"] = 1
    new.keep()
    new.cap_deadline(NOW - 10)
    assert plan_commit(new, CONFIG, NOW, "h").action is Action.NOTHING
    flashed = Session(record(user_id="alice"), now=NOW)
    flashed.logout()
    flashed["flash"] = "bye"
    flashed.cap_deadline(NOW)
    plan = plan_commit(flashed, CONFIG, NOW, "h")
    assert (plan.action, plan.events) == (Action.DELETE, ("session.logout",))


def test_new_session_with_data_is_created_with_deadlines() -> None:
    s = Session(None, now=NOW)
    s["cart"] = ["hat"]
    plan = plan_commit(s, CONFIG, NOW, "h")
    assert plan.action is Action.CREATE
    assert plan.cookie is CookieAction.SET
    assert plan.record is not None
    assert plan.record.data == {"cart": ["hat"]}
    assert plan.record.expires_at == NOW + CONFIG.idle_timeout
    assert plan.record.absolute_at == NOW + CONFIG.absolute_timeout
    assert plan.max_age is None


def test_untouched_session_inside_touch_interval_does_nothing() -> None:
    s = Session(record(), now=NOW + 1)
    _ = s["n"]
    assert plan_commit(s, CONFIG, NOW + 1, "x").action is Action.NOTHING


def test_untouched_session_after_touch_interval_is_touched_without_data() -> None:
    later = NOW + CONFIG.effective_touch_interval
    plan = plan_commit(Session(record(), now=later), CONFIG, later, "x")
    assert plan.action is Action.TOUCH
    assert plan.patch is not None
    assert not plan.patch.touches_data
    assert plan.patch.fields == {
        "last_seen_at": later,
        "expires_at": later + CONFIG.idle_timeout,
    }
    assert plan.cookie is CookieAction.NONE


def test_keep_alive_touches_inside_the_touch_interval_and_stores_nothing_new() -> None:
    s = Session(record(), now=NOW + 10)
    s.keep_alive()
    plan = plan_commit(s, CONFIG, NOW + 10)
    assert plan.action is Action.TOUCH
    assert plan.cookie is CookieAction.NONE
    assert plan.patch is not None
    assert plan.patch.set_json == {} and plan.patch.removed == frozenset()
    assert plan.patch.fields["expires_at"] == NOW + 10 + 30 * 60
    # A remember-me session has no idle deadline: the touch keeps the absolute one.
    remembered = Session(record(remember=True, expires_at=NOW + 99, absolute_at=NOW + 99), NOW)
    remembered.keep_alive()
    patch = plan_commit(remembered, CONFIG, NOW + 10).patch
    assert patch is not None and patch.fields["expires_at"] == NOW + 99
    # Nothing stored: a keep-alive starts no session.
    fresh = Session(None, now=NOW)
    fresh.keep_alive()
    assert plan_commit(fresh, CONFIG, NOW, "h").action is Action.NOTHING


def test_in_place_mutation_is_a_delta_of_that_key_only() -> None:
    s = Session(record(data={"cart": ["hat"], "n": 1}), now=NOW)
    s["cart"].append("scarf")
    plan = plan_commit(s, CONFIG, NOW, "x")
    assert plan.action is Action.UPDATE
    assert plan.patch is not None
    assert plan.patch.set_json == {"cart": '["hat","scarf"]'}
    assert plan.patch.removed == frozenset()


def test_reading_a_mutable_value_without_changing_it_writes_nothing() -> None:
    s = Session(record(data={"cart": ["hat"]}), now=NOW)
    assert s["cart"] == ["hat"]
    assert plan_commit(s, CONFIG, NOW, "x").action is Action.NOTHING


def test_deletion_is_a_removal() -> None:
    s = Session(record(data={"a": 1, "b": 2}), now=NOW)
    del s["a"]
    plan = plan_commit(s, CONFIG, NOW, "x")
    assert plan.patch is not None
    assert plan.patch.removed == frozenset({"a"})
    assert plan.patch.set_json == {}


def test_login_renames_and_resets_the_absolute_deadline() -> None:
    s = Session(record(), now=NOW + 100)
    s.login("alice")
    plan = plan_commit(s, CONFIG, NOW + 100, "x")
    assert plan.action is Action.RENAME
    assert plan.cookie is CookieAction.SET
    assert plan.patch is not None
    assert plan.patch.fields["user_id"] == "alice"
    assert plan.patch.fields["auth_at"] == NOW + 100
    assert plan.patch.fields["absolute_at"] == NOW + 100 + CONFIG.absolute_timeout
    assert plan.events == ("session.login",)


def test_remember_me_login_gets_a_persistent_cookie() -> None:
    s = Session(record(), now=NOW)
    s.login("alice", remember=True)
    plan = plan_commit(s, CONFIG, NOW, "x")
    assert plan.max_age == int(CONFIG.remember_timeout)
    assert plan.patch is not None
    assert plan.patch.fields["expires_at"] == NOW + CONFIG.remember_timeout


def test_regenerate_keeps_the_absolute_deadline() -> None:
    r = record()
    s = Session(r, now=NOW + 5)
    s.regenerate()
    plan = plan_commit(s, CONFIG, NOW + 5, "x")
    assert plan.action is Action.RENAME
    assert plan.patch is not None
    assert "absolute_at" not in plan.patch.fields
    assert "user_id" not in plan.patch.fields


def test_logout_deletes_and_clears_or_replaces() -> None:
    s = Session(record(user_id="alice"), now=NOW)
    s.logout()
    plan = plan_commit(s, CONFIG, NOW, "x")
    assert (plan.action, plan.cookie) == (Action.DELETE, CookieAction.CLEAR)
    s = Session(record(user_id="alice"), now=NOW)
    s.logout()
    s["flash"] = "bye"
    plan = plan_commit(s, CONFIG, NOW, "new-handle")
    assert plan.action is Action.REPLACE
    assert plan.record is not None
    assert plan.record.user_id is None
    assert plan.record.handle == "new-handle"
    assert plan.record.data == {"flash": "bye"}


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), b"bytes"])
def test_non_json_values_fail_naming_the_key(value: object) -> None:
    from coatcheck import SessionDataError

    s = Session(record(), now=NOW)
    s["bad key"] = value
    with pytest.raises(SessionDataError, match="'bad key'"):
        plan_commit(s, CONFIG, NOW, "x")


def test_login_as_another_user_replaces_the_session_with_a_new_handle() -> None:
    s = Session(record(user_id="alice", data={"alice_secret": 1}), now=NOW)
    s.login("bob")
    plan = plan_commit(s, CONFIG, NOW, "fresh-handle")
    assert plan.action is Action.REPLACE
    assert plan.record is not None
    assert plan.record.handle == "fresh-handle"
    assert plan.record.user_id == "bob"
    assert plan.record.data == {}


def test_engine_metadata_is_written_apart_from_data() -> None:
    s = Session(record(), now=NOW)
    s.set_meta("csrf", "secret")
    plan = plan_commit(s, CONFIG, NOW, "x")
    assert plan.action is Action.UPDATE
    assert plan.patch is not None
    assert plan.patch.fields["meta"] == {"csrf": "secret"}
    assert plan.patch.set_json == {}
    fresh = Session(None, now=NOW)
    fresh.set_meta("csrf", "secret")
    plan = plan_commit(fresh, CONFIG, NOW, "h")
    assert plan.action is Action.CREATE  # a form's secret must persist
    assert plan.record is not None
    assert plan.record.meta == {"csrf": "secret"}
    assert plan.record.data == {}


def test_a_dead_token_that_stores_nothing_is_cleared() -> None:
    """The client came with a token that opened nothing: if the request stores nothing the
    plan tells it to drop that token (CLEAR, no store action); if it stores something, the
    new session's cookie replaces it. A visitor without a token is told nothing."""
    assert plan_commit(Session(None, NOW), CONFIG, NOW).action is Action.NOTHING
    dead = Session.for_dead_token(NOW)
    plan = plan_commit(dead, CONFIG, NOW)
    assert (plan.action, plan.cookie, plan.record, plan.patch) == (
        Action.CLEAR,
        CookieAction.CLEAR,
        None,
        None,
    )
    dead["cart"] = ["hat"]
    plan = plan_commit(dead, CONFIG, NOW, "new-handle")
    assert (plan.action, plan.cookie) == (Action.CREATE, CookieAction.SET)
