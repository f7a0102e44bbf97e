"""What an edge may ask the manager without loading a session for a request: does a token
name a live session, would a commit write, was the session reached through a rotated-out
token; ending a session by its token; and a ``cap_deadline()`` carried through to the
store. On the memory store and the cookie store (the two kinds of carrier), with a
FakeClock."""

from __future__ import annotations

import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.security.sealing import new_key
from coatcheck.stores import CookieStore, MemoryStore, Store
from tests.support.clock import FakeClock

CONFIG = SessionConfig(idle_timeout=600, absolute_timeout=3600)


def stored(manager: SessionManager, **data: object) -> str:
    session = manager.load_sync(None)
    session.update(data)
    token = manager.commit_sync(session).token
    assert token is not None
    return token


def test_exists_answers_for_live_tokens_only_and_counts_nothing(clock: FakeClock) -> None:
    config = CONFIG.replace(unknown_token_limit=1)
    manager = SessionManager(MemoryStore(), config, clock=clock)
    token = stored(manager, a=1)
    assert manager.exists_sync(token)
    assert not manager.exists_sync(None)
    assert not manager.exists_sync("not a token")
    for _ in range(3):  # unknown tokens: no throttle count (a limit of 1 would refuse)
        assert not manager.exists_sync(tokens.new_token())
    clock.advance(600)
    assert not manager.exists_sync(token)  # idle deadline reached


async def test_exists_does_not_follow_or_punish_a_rotated_out_token(clock: FakeClock) -> None:
    config = CONFIG.replace(rotation_interval=60, rotation_grace=30)
    manager = SessionManager(MemoryStore(), config, clock=clock)
    old = stored(manager, a=1)
    clock.advance(61)
    rotated = manager.load_sync(old)
    new = manager.commit_sync(rotated).token
    assert new is not None and new != old
    assert await manager.exists(new)
    assert not await manager.exists(old)  # a marker, not a session
    clock.advance(31)
    assert not await manager.exists(old)  # past the grace: still no theft verdict
    assert await manager.exists(new)


def test_end_deletes_the_record_under_a_token(clock: FakeClock) -> None:
    manager = SessionManager(MemoryStore(), CONFIG, clock=clock)
    token = stored(manager, a=1)
    assert manager.end_sync(token) is True
    assert not manager.exists_sync(token)
    assert manager.end_sync(token) is False
    assert manager.end_sync("garbage") is False


def test_wants_commit_follows_the_plan(clock: FakeClock) -> None:
    manager = SessionManager(MemoryStore(), CONFIG, clock=clock)
    token = stored(manager, a=1)
    session = manager.load_sync(token)
    assert not manager.wants_commit(session)  # just written: no touch due
    session["b"] = 2
    assert manager.wants_commit(session)
    clock.advance(CONFIG.effective_touch_interval)
    untouched = manager.load_sync(token)
    assert manager.wants_commit(untouched)  # a touch is due
    assert not manager.wants_commit(manager.load_sync(None))  # empty, anonymous


def test_through_old_token_tells_a_grace_load_apart(clock: FakeClock) -> None:
    config = CONFIG.replace(rotation_interval=60, rotation_grace=30)
    manager = SessionManager(MemoryStore(), config, clock=clock)
    old = stored(manager, a=1)
    clock.advance(61)
    new = manager.commit_sync(manager.load_sync(old)).token
    assert new is not None
    late = manager.load_sync(old)  # inside the grace window: the live session
    assert late["a"] == 1
    assert manager.through_old_token(late, old)
    assert not manager.through_old_token(manager.load_sync(new), new)


async def test_a_cookie_session_exists_while_sealed_and_cannot_be_ended(
    clock: FakeClock,
) -> None:
    manager = SessionManager(CookieStore([new_key()]), CONFIG, clock=clock)
    token = stored(manager, a=1)
    assert len(token) > tokens.TOKEN_LENGTH  # the session itself, sealed
    assert await manager.exists(token)
    assert not await manager.exists(token[:-4] + "AAAA")  # tampered
    assert await manager.end(token) is False  # nothing on the server to delete
    assert manager.exists_sync(token)
    assert not manager.through_old_token(manager.load_sync(token), token)
    clock.advance(600)
    assert not manager.exists_sync(token)


@pytest.mark.parametrize("kind", ["memory", "cookie"])
def test_a_deadline_cap_shortens_the_session_and_a_passed_one_ends_it(
    clock: FakeClock, kind: str
) -> None:
    store: Store = MemoryStore() if kind == "memory" else CookieStore([new_key()])
    manager = SessionManager(store, CONFIG, clock=clock)
    token = stored(manager, a=1)
    session = manager.load_sync(token)
    session.cap_deadline(clock.now + 120)  # nothing else changes: still written
    token = manager.commit_sync(session).token or token
    assert manager.load_sync(token).expires_at == clock.now + 120
    clock.advance(119)
    assert manager.exists_sync(token)
    clock.advance(1)
    assert not manager.exists_sync(token)

    token = stored(manager, a=2)
    session = manager.load_sync(token)
    session.cap_deadline(clock.now - 1)
    result = manager.commit_sync(session)
    assert result.clear and result.token is None
    if kind == "memory":
        assert manager.end_sync(token) is False  # the record is gone already
