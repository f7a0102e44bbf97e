"""A record damaged in the store is a fresh session with a warning, on every store, and
never stands in the way of the other records.

Each case of ``damage.CASES`` that a store's storage can hold is written into one of
alice's two sessions through the store's raw client (sqlite3, psycopg, redis-py,
pymemcache; the memory store's own dict). Then, on the sync and the async path: the
damaged token loads as a fresh, empty session and the ``coatcheck.stores`` logger warns
(naming no key); ``exists`` says no; alice's device list shows her other session only;
``is_active``, ``revoke``, ``revoke_user`` and ``purge_expired`` work for the others; the
store's statistics and the real ``coatcheck sessions list`` and ``coatcheck stats``
commands (Click's runner with ``catch_exceptions=False``: an exception would escape)
answer with exit code 0.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coatcheck.cli import build_cli
from coatcheck.cli.report import store_stats
from coatcheck.core.session import Session
from coatcheck.core.tokens import storage_key
from coatcheck.engine.manager import SessionManager
from coatcheck.security.sealing import new_key
from coatcheck.stores import CookieStore, Store
from tests.conformance.conftest import STORE_FACTORIES, store_class
from tests.conformance.damage import CASES, DAMAGERS, damager_class_cases
from tests.support.clock import FakeClock

TARGETS = [
    pytest.param(name, case, id=f"{name}-{case}")
    for name, factory in STORE_FACTORIES.items()
    for case in CASES
    if case in damager_class_cases(store_class(factory))
]


@dataclass
class Issued:
    token: str
    handle: str


class Paths:
    """The manager's sync or async path behind one async face."""

    def __init__(self, manager: SessionManager, mode: str) -> None:
        self.manager, self.mode = manager, mode

    async def __call__(self, name: str, *args: Any) -> Any:
        if self.mode == "sync":
            return getattr(self.manager, f"{name}_sync")(*args)
        return await getattr(self.manager, name)(*args)

    async def login(self, user: str, cart: list[str]) -> Issued:
        session: Session = await self("load", None)
        session["cart"] = cart
        session.login(user)
        token = (await self("commit", session)).token
        assert token is not None and session.handle is not None
        return Issued(token, session.handle)

    async def is_new(self, token: str) -> bool:
        session: Session = await self("load", token)
        fresh = session.is_new and dict(session) == {}
        session.close()
        return fresh


def run_cli(*args: str) -> str:
    """The real ``coatcheck`` command; an exception inside it would escape the runner."""
    result = CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def test_every_store_can_be_damaged_in_some_way() -> None:
    """Each store with a damager meets at least five of the cases, and every case is met
    by some store (a case no store can hold would be dead weight)."""
    for name, factory in STORE_FACTORIES.items():
        kind = store_class(factory)
        if kind in DAMAGERS:
            assert len(damager_class_cases(kind)) >= 5, name
    met = {case for _, case in (p.values for p in TARGETS)}
    assert met == set(CASES)


@pytest.mark.parametrize(("which", "case"), TARGETS)
async def test_a_damaged_record_is_a_fresh_session_and_spares_the_others(
    which: str, case: str, mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(time.time())
    with STORE_FACTORIES[which](tmp_path) as real:
        assert isinstance(real, Store)
        on = Paths(SessionManager(real, clock=clock), mode)
        victim = await on.login("alice", ["hat"])
        clock.advance(1)
        sibling = await on.login("alice", ["scarf"])
        clock.advance(1)
        other = await on.login("bob", ["gloves"])

        damager = DAMAGERS[type(real)](real)
        damager.damage(case, storage_key(victim.token))
        caplog.set_level(logging.WARNING, logger="coatcheck.stores")

        # The damaged record: a fresh session, and a warning that names no key.
        assert await on.is_new(victim.token)
        warned = [r for r in caplog.records if r.name == "coatcheck.stores"]
        assert warned and all(r.levelno == logging.WARNING for r in warned)
        assert "damaged session record" in warned[0].getMessage()
        for record in caplog.records:
            text = record.getMessage()
            assert victim.token not in text and storage_key(victim.token) not in text
        assert await on("exists", victim.token) is False
        assert await on("is_active", victim.handle) is False

        # Everyone else is served as before.
        listed = await on("list_user_sessions", "alice")
        assert [s.handle for s in listed] == [sibling.handle]
        assert await on("is_active", sibling.handle) is True
        assert not await on.is_new(sibling.token)

        # The operator's view: figures and the real commands, all exit code 0.
        numbers = store_stats(on.manager, top=10, soon=300)
        # alice's sibling and bob, and the damaged record too where a store counts by a
        # deadline column it cannot see is damaged elsewhere in the row.
        assert 2 <= numbers["active"] <= 3
        if "top_users" in numbers:
            assert ("bob", 1) in numbers["top_users"]
        if damager.url is not None:
            shown = run_cli("sessions", "list", "--user", "alice", "--store", damager.url)
            assert sibling.handle in shown and victim.handle not in shown
            assert "Active sessions:" in run_cli("stats", "--store", damager.url)

        # Revocation and purge work around it.
        assert await on("revoke", other.handle) is True
        assert await on.is_new(other.token)
        assert await on("revoke_user", "alice") >= 1
        assert await on("list_user_sessions", "alice") == []
        assert await on.is_new(sibling.token)
        clock.advance(3 * 24 * 3600)
        assert await on("purge_expired") >= 0
        assert await on.is_new(victim.token)
        if mode == "async":
            await real.close()


@pytest.mark.parametrize(
    "meta",
    [{"level": "high"}, {"csrf": 12345}, {"rotated_to": "x", "rotated_at": "then"}],
)
def test_the_cookie_store_opens_no_session_of_another_shape(meta: dict[str, Any]) -> None:
    """The cookie store keeps nothing to damage, but an authentic cookie may carry what
    this code never writes (another version's metadata): a fresh session, as for a
    tampered one, never a TypeError in the engine."""
    store = CookieStore([new_key()])
    manager = SessionManager(store)
    session = manager.load_sync(None)
    session["cart"] = ["hat"]
    token = manager.commit_sync(session).token
    assert token is not None and not manager.load_sync(token).is_new
    record = store.unseal(token)
    record.meta = meta
    forged = store.seal(record)  # authentic: sealed with the store's own key
    assert manager.load_sync(forged).is_new
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert manager.load_sync(tampered).is_new


INDEXED = [
    name
    for name, factory in STORE_FACTORIES.items()
    if getattr(DAMAGERS.get(store_class(factory)), "indexed_by_item", False)
]


@pytest.mark.parametrize("which", INDEXED)
async def test_a_damaged_user_index_never_hides_a_session_from_revocation(
    which: str, mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis and memcached keep a user's sessions in an index of their own. Damaged (a
    string where Redis keeps a sorted set, garbage bytes in memcached), it lists nothing,
    with a warning; ``revoke_user`` still ends every session of the user (found without
    it), bob's are untouched, and alice's next login is listed again."""
    clock = FakeClock(time.time())
    with STORE_FACTORIES[which](tmp_path) as real:
        assert isinstance(real, Store)
        on = Paths(SessionManager(real, clock=clock), mode)
        first = await on.login("alice", ["hat"])
        second = await on.login("alice", ["scarf"])
        bob = await on.login("bob", ["gloves"])
        DAMAGERS[type(real)](real).damage_index("alice")
        caplog.set_level(logging.WARNING, logger="coatcheck.stores")

        assert await on("list_user_sessions", "alice") == []
        assert any("index" in r.getMessage() for r in caplog.records)
        assert await on("revoke_user", "alice") == 2
        assert await on.is_new(first.token) and await on.is_new(second.token)
        assert [s.handle for s in await on("list_user_sessions", "bob")] == [bob.handle]

        again = await on.login("alice", ["hat"])
        assert [s.handle for s in await on("list_user_sessions", "alice")] == [again.handle]
        if mode == "async":
            await real.close()
