"""The store contract as types: what each shipped store declares, that the core contract
alone serves every request, and that what a store's type cannot do is refused by the
engine with one error naming the capability (never by a store method at run time).
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.cli.common import CommandError
from coatcheck.cli.report import store_stats
from coatcheck.core.events import MemorySink
from coatcheck.errors import ConfigError, MissingCapability, UnsupportedOperation
from coatcheck.stores import (
    ClientSide,
    CookieStore,
    Countable,
    HandleIndex,
    Lockable,
    MemoryStore,
    Purgeable,
    SQLiteStore,
    Statistics,
    Store,
    UserIndex,
    capabilities,
)
from coatcheck.stores.base import CAPABILITIES
from coatcheck.stores.memcached import MemcachedStore
from coatcheck.stores.postgres import PostgresStore
from coatcheck.stores.redis import RedisStore
from tests.support.clock import FakeClock
from tests.support.core_store import CoreOnlyStore

ROOT = Path(__file__).resolve().parents[1]
STORES = ROOT / "src" / "coatcheck" / "stores"
KEY = "w2s4eRzFttw0lqDOYJHm4WBEvRKbVM0ULpCr_XLHryo"


def test_each_shipped_store_declares_what_it_can_do() -> None:
    server_side = {HandleIndex, UserIndex, Purgeable, Countable, Statistics, Lockable}
    assert capabilities(MemoryStore) == server_side
    assert capabilities(SQLiteStore) == server_side
    assert capabilities(PostgresStore) == server_side
    assert capabilities(RedisStore) == server_side
    # memcached cannot gather statistics beyond a count (no query over its items)
    assert capabilities(MemcachedStore) == {HandleIndex, UserIndex, Purgeable, Countable, Lockable}
    # the cookie store keeps no records: it seals, and purges its revocation store
    assert capabilities(CookieStore) == {ClientSide, Purgeable}
    assert capabilities(CookieStore([KEY])) == {ClientSide, Purgeable}  # instances alike
    assert capabilities(CoreOnlyStore) == frozenset()
    for kind in (MemoryStore, SQLiteStore, PostgresStore, RedisStore, MemcachedStore):
        assert issubclass(kind, Store)
    assert not issubclass(CookieStore, Store)


def test_no_store_method_refuses_at_run_time() -> None:
    """A store says what it cannot do by not declaring it: no module of ``stores/`` raises
    UnsupportedOperation or NotImplementedError."""
    refusals = []
    for path in sorted(STORES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = getattr(target, "id", getattr(target, "attr", ""))
                if name in ("UnsupportedOperation", "NotImplementedError", "_no_records"):
                    refusals.append(f"{path.relative_to(STORES)}:{node.lineno}")
    assert refusals == []


def _serve_requests(manager: SessionManager) -> None:
    """Anonymous write, login, regenerate, read, logout, idle expiry: every request kind."""
    session = manager.load_sync(None)
    session["cart"] = ["hat"]
    first = manager.commit_sync(session).token
    assert first is not None
    session = manager.load_sync(first)
    session.login("alice")
    logged_in = manager.commit_sync(session).token
    assert logged_in is not None and logged_in != first
    assert manager.load_sync(first).user_id is None  # the login moved the session
    session = manager.load_sync(logged_in)
    session.regenerate()
    regenerated = manager.commit_sync(session).token
    assert regenerated is not None
    session = asyncio.run(manager.load(regenerated))
    assert (session.user_id, dict(session)) == ("alice", {"cart": ["hat"]})
    assert asyncio.run(manager.commit(session)).token is None  # nothing changed: no write
    session = manager.load_sync(regenerated)
    session.logout()
    assert manager.commit_sync(session).clear is True
    assert manager.load_sync(regenerated).is_new


def test_the_core_contract_alone_serves_every_request(clock: FakeClock) -> None:
    store = CoreOnlyStore()
    sink = MemorySink()
    _serve_requests(SessionManager(store, clock=clock, events=[sink]))
    names = [e.name for e in sink.events]
    assert names == [
        "session.created",
        "session.login",
        "session.rejected",  # the token the login replaced
        "session.regenerated",
        "session.logout",
        "session.rejected",  # the logged-out token
    ]
    # An idle session expires on the core contract too.
    manager = SessionManager(store, SessionConfig(idle_timeout=60), clock=clock)
    session = manager.load_sync(None)
    session["n"] = 1
    token = manager.commit_sync(session).token
    clock.advance(61)
    assert manager.load_sync(token).is_new


def test_what_the_store_does_not_declare_is_refused_when_asked(clock: FakeClock) -> None:
    """Call time: the manager works for everything else, and each refusal names the
    capability, the operation and the store."""
    manager = SessionManager(CoreOnlyStore(), clock=clock)
    calls = {
        ("UserIndex", "list_user_sessions"): [
            lambda: manager.list_user_sessions_sync("alice"),
            lambda: asyncio.run(manager.list_user_sessions("alice")),
        ],
        ("UserIndex", "revoke_user"): [
            lambda: manager.revoke_user_sync("alice"),
            lambda: asyncio.run(manager.revoke_user("alice")),
        ],
        ("HandleIndex", "revoke"): [
            lambda: manager.revoke_sync("h"),
            lambda: asyncio.run(manager.revoke("h")),
        ],
        ("HandleIndex", "is_active"): [
            lambda: manager.is_active_sync("h"),
            lambda: asyncio.run(manager.is_active("h")),
        ],
        ("Purgeable", "purge_expired"): [
            manager.purge_expired_sync,
            lambda: asyncio.run(manager.purge_expired()),
        ],
    }
    for (capability, operation), attempts in calls.items():
        for attempt in attempts:
            with pytest.raises(MissingCapability) as caught:
                attempt()
            assert str(caught.value) == (
                f"{operation} needs a store with the {capability} capability "
                f"(coatcheck.stores.base.{capability}), and this CoreOnlyStore has none"
            )
            assert isinstance(caught.value, UnsupportedOperation)
    _serve_requests(manager)  # none of it broke the manager


def test_a_setting_the_store_cannot_honour_is_refused_at_construction(clock: FakeClock) -> None:
    """Startup: a setting that needs a capability on ordinary requests (a rotation race
    follows the session by handle; a login counts the user's sessions) fails when the
    manager is built, not at the first request that needs it."""
    for config, capability, setting in (
        (SessionConfig(rotation_interval=600), "HandleIndex", "rotation_interval"),
        (SessionConfig(max_sessions_per_user=2), "UserIndex", "max_sessions_per_user"),
    ):
        with pytest.raises(MissingCapability) as caught:
            SessionManager(CoreOnlyStore(), config, clock=clock)
        assert (caught.value.capability, caught.value.operation) == (capability, setting)
    # The same settings over a store that declares both are fine.
    SessionManager(MemoryStore(), SessionConfig(rotation_interval=600, max_sessions_per_user=2))


def test_stats_ask_for_statistics_then_a_count(clock: FakeClock) -> None:
    class CountingStore(CoreOnlyStore, Countable):
        def count_sync(self, now: float) -> int:
            return 7

        async def count(self, now: float) -> int:
            return 7

    counting = SessionManager(CountingStore(), clock=clock)
    assert store_stats(counting, top=3, soon=60) == {"active": 7}
    with pytest.raises(CommandError, match=r"CoreOnlyStore is not Countable"):
        store_stats(SessionManager(CoreOnlyStore(), clock=clock), top=3, soon=60)


def test_a_revocation_store_must_keep_records() -> None:
    with pytest.raises(ConfigError, match="server-side store"):
        CookieStore([KEY], revocations=CookieStore([KEY]))  # type: ignore[arg-type]


def _new_store_paragraph() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    start = text.index("- **A new store**")
    return " ".join(text[start : text.index("\n- **", start)].split())


ASK: dict[str, Callable[[SessionManager], object]] = {
    "is_active": lambda m: m.is_active_sync("h"),
    "revoke": lambda m: m.revoke_sync("h"),
    "list_user_sessions": lambda m: m.list_user_sessions_sync("alice"),
    "revoke_user": lambda m: m.revoke_user_sync("alice"),
    "purge_expired": lambda m: m.purge_expired_sync(),
    "lock_sessions": lambda m: SessionManager(m.store, SessionConfig(lock_sessions=True)),
}


def test_the_documented_store_contract_is_the_code(clock: FakeClock) -> None:
    """docs/architecture.md, "A new store": the core methods are the abstract ones of
    ``Store``, the capabilities are all of them, and each use it names for a capability
    is refused, naming it, over a store of the core contract only."""
    paragraph = _new_store_paragraph()
    core = re.search(r"the core contract, all that a request needs: (.*?), each sync", paragraph)
    assert core is not None
    named = set(re.findall(r"`(\w+)`", core.group(1)))
    assert named | {f"{n}_sync" for n in named} == Store.__abstractmethods__
    capability_names = {c.__name__ for c in CAPABILITIES}
    assert capability_names <= set(re.findall(r"`(\w+)`", paragraph))
    uses = {
        capability: re.findall(r"`([\w ]+)`", listed)
        for capability, listed in re.findall(r"`(\w+)` \(((?:`[\w ]+`(?:, )?)+)\)", paragraph)
    }
    assert set(uses) == {"HandleIndex", "UserIndex", "Purgeable", "Statistics", "Lockable"}
    for capability in ("HandleIndex", "UserIndex", "Purgeable", "Lockable"):
        for use in uses[capability]:
            attempt = ASK.get(use) or (  # else a setting, refused when the manager is built
                lambda m, use=use: SessionManager(m.store, SessionConfig(**{use: 5}))
            )
            with pytest.raises(MissingCapability) as caught:
                attempt(SessionManager(CoreOnlyStore(), clock=clock))
            assert (caught.value.capability, caught.value.operation) == (capability, use)
    assert uses["Statistics"] == ["coatcheck stats"]  # store_stats, tested above
