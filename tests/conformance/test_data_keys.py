"""Any data key, any text: one rule on every store, for a new session and for an update.

The rule: a key or a string anywhere in a value (a nested key too) that holds U+0000 or a
lone surrogate is refused at commit with ``SessionDataError`` naming the key, on every
store alike (PostgreSQL's jsonb cannot keep U+0000, and no store writes a lone surrogate
as UTF-8), and nothing is written. Any other ``str`` is kept exactly: control characters,
non-BMP characters, quotes and backslashes, JSON-path syntax, very long keys. A delta of
hundreds of keys is applied whole (SQLite caps a function's arguments).

The expected outcome is worked out here from the characters themselves, never by asking
the code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from coatcheck.core.session import Session
from coatcheck.engine.manager import CommitResult, SessionManager
from coatcheck.errors import SessionDataError
from coatcheck.security.sealing import new_key
from coatcheck.stores import CookieStore, Store
from tests.conformance.conftest import STORE_FACTORIES

KEYS = st.text(max_size=40) | st.text(
    st.sampled_from(["\x00", "\ud800", "\udfff", "\n", "\x7f", '"', "\\", "$", ".", "😀", "é"]),
    min_size=1,
    max_size=12,
)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | KEYS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)


def unstorable(text: str) -> bool:
    return "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def refused(key: str, value: Any) -> bool:
    """Does the rule refuse ``key`` = ``value``? (Worked out from the characters.)"""
    if unstorable(key):
        return True
    if isinstance(value, str):
        return unstorable(value)
    if isinstance(value, list):
        return any(refused("", v) for v in value)
    if isinstance(value, dict):
        return any(refused(k, v) for k, v in value.items())
    return False


class Paths:
    """The manager's sync or async path, behind one sync face (the async one on a loop
    of the test's own, which the store's async clients stay on)."""

    def __init__(self, manager: SessionManager, mode: str, loop: asyncio.AbstractEventLoop):
        self.manager, self.mode, self.loop = manager, mode, loop

    def load(self, token: str | None) -> Session:
        if self.mode == "sync":
            return self.manager.load_sync(token)
        return self.loop.run_until_complete(self.manager.load(token))

    def commit(self, session: Session) -> CommitResult:
        if self.mode == "sync":
            return self.manager.commit_sync(session)
        return self.loop.run_until_complete(self.manager.commit(session))

    base = ""
    """The token of the session the updates write to."""

    def write(self, session: Session) -> None:
        """Commit an update of the ``base`` session, following its token if it changes."""
        self.base = self.commit(session).token or self.base

    def stored(self, token: str) -> dict[str, Any]:
        session = self.load(token)
        assert not session.is_new
        data = dict(session)
        session.close()
        return data


@contextlib.contextmanager
def cookie_store(tmp_path: Path) -> Iterator[CookieStore]:
    yield CookieStore([new_key()])


@contextlib.contextmanager
def paths(store_name: str, mode: str, tmp_path: Path) -> Iterator[Paths]:
    loop = asyncio.new_event_loop()
    factory = cookie_store if store_name == "cookie" else STORE_FACTORIES[store_name]
    try:
        with factory(tmp_path) as store:
            assert isinstance(store, Store | CookieStore)
            yield Paths(SessionManager(store), mode, loop)
            loop.run_until_complete(store.close())
    finally:
        loop.close()


SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def check_one(p: Paths, key: str, value: Any) -> None:
    """``key`` = ``value`` in a new session, then as an update of the session ``p.base``
    (whose token changes at each write on the cookie store)."""
    expect_refusal = refused(key, value)
    # create
    session = p.load(None)
    session[key] = value
    if expect_refusal:
        with pytest.raises(SessionDataError) as caught:
            p.commit(session)
        assert repr(key) in str(caught.value)
    else:
        token = p.commit(session).token
        assert token is not None
        assert p.stored(token) == {key: value}
    # update
    before = p.stored(p.base)
    session = p.load(p.base)
    session[key] = value
    if expect_refusal:
        with pytest.raises(SessionDataError) as caught:
            p.commit(session)
        assert repr(key) in str(caught.value)
        assert p.stored(p.base) == before  # nothing was written
        return
    p.write(session)
    assert p.stored(p.base) == {**before, key: value}
    session = p.load(p.base)
    del session[key]
    p.write(session)
    assert p.stored(p.base) == {k: v for k, v in before.items() if k != key}


def test_any_key_and_any_text_follow_one_rule_on_every_store(
    store_name: str, mode: str, tmp_path: Path
) -> None:
    one_rule(store_name, mode, tmp_path)


@pytest.mark.parametrize("path", ["sync", "async"])
def test_the_cookie_store_follows_the_same_rule(path: str, tmp_path: Path) -> None:
    one_rule("cookie", path, tmp_path)


def one_rule(store_name: str, mode: str, tmp_path: Path) -> None:
    with paths(store_name, mode, tmp_path) as p:
        session = p.load(None)
        session["base"] = 1
        p.write(session)
        assert p.base

        @SETTINGS
        @given(key=KEYS, value=VALUES)
        @example(key="a\x00b", value=1)
        @example(key="ok", value={"nested\x00": 1})
        @example(key="ok", value="\\u0000")  # a backslash and five letters: plain text
        @example(key="\ud83d", value=1)
        @example(key="😀" * 2000, value="😀")
        @example(key='$."a\\b"[0]', value="\x01\x1f\u2028")
        def run(key: str, value: Any) -> None:
            check_one(p, key, value)

        run()


def test_a_delta_of_hundreds_of_keys_applies_whole(
    store_name: str, mode: str, tmp_path: Path
) -> None:
    """A new session of 300 keys, then one update that removes 200 of them and sets 150
    new ones (SQLite's functions take at most 127 arguments: the store must not turn a
    long delta into a 503)."""
    with paths(store_name, mode, tmp_path) as p:
        session = p.load(None)
        for i in range(300):
            session[f"é{i}"] = i
        token = p.commit(session).token
        assert token is not None
        session = p.load(token)
        for i in range(200):
            del session[f"é{i}"]
        for i in range(150):
            session[f"new{i}"] = [i]
        p.commit(session)
        expected: dict[str, Any] = {f"é{i}": i for i in range(200, 300)}
        expected |= {f"new{i}": [i] for i in range(150)}
        assert p.stored(token) == expected
