"""The consent ledger on real databases (SQLite files, the PostgreSQL server): rows
appended by the engine's events, never updated, kept after the session ends, a user's
choice recalled on their next device, and the personal-data contract."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from coatcheck import SessionManager
from coatcheck.core.client import ClientInfo
from coatcheck.errors import ConfigError
from coatcheck.privacy.contract import DECLARED_HOLDERS, PersonalDataHolder
from coatcheck.privacy.ledger import ConsentLedger
from coatcheck.stores import MemoryStore, SQLiteStore
from coatcheck.stores.postgres import PostgresStore
from tests.support.clock import FakeClock
from tests.support.postgres_server import SHARED_URL, admin_connect
from tests.support.user_agents import FIREFOX_LINUX, SAFARI_IPHONE

NOW = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[object, str]]:
    """A store and the ledger beside it, on a real SQLite file or the PostgreSQL server
    (tables of their own, dropped afterwards)."""
    if request.param == "sqlite":
        yield SQLiteStore(tmp_path / "sessions.db"), "coatcheck_consent_ledger"
        return
    conn = admin_connect()
    suffix = uuid.uuid4().hex[:10]
    table, ledger_table = f"cc_{suffix}", f"ccl_{suffix}"
    store = PostgresStore(SHARED_URL, table=table)
    try:
        yield store, ledger_table
    finally:
        store.close_sync()
        for name in (table, ledger_table):
            conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(f"DROP FUNCTION IF EXISTS {ledger_table}_refuse_update()")
        conn.execute("DELETE FROM coatcheck_schema WHERE name = %s", (table,))
        conn.close()


def managed(backend: tuple[object, str], clock: FakeClock) -> tuple[SessionManager, ConsentLedger]:
    store, table = backend
    ledger = ConsentLedger.beside(store, table=table, environ={})
    manager = SessionManager(store, clock=clock)  # type: ignore[arg-type]
    return ledger.attach(manager), ledger


def test_choices_are_appended_and_outlive_the_session(backend: tuple[object, str]) -> None:
    clock = FakeClock(NOW)
    manager, ledger = managed(backend, clock)
    session = manager.load_sync(None, ClientInfo(FIREFOX_LINUX, "203.0.113.9", gpc=True))
    session.consent.accept_all()  # GPC first (at load), then the banner's click
    token = manager.commit_sync(session).token
    handle = session.handle
    clock.advance(60)
    later = manager.load_sync(token)
    later.consent.deny("functional")
    manager.commit_sync(later)
    clock.advance(60)
    ending = manager.load_sync(token)
    ending.logout()
    manager.commit_sync(ending)
    assert manager.load_sync(token).is_new  # the session is gone ...

    rows = ledger.rows(handle=handle)  # ... its proof of consent is not
    assert [(r["method"], r["granted"], r["denied"], r["withdrawn"]) for r in rows] == [
        ("gpc", [], ["analytics", "marketing"], []),
        ("accept_all", ["functional"], [], []),
        ("custom", [], ["functional"], ["functional"]),
    ]
    assert [r["consent_at"] for r in rows] == [NOW, NOW, NOW + 60]
    assert rows[-1]["allowed"] == [] and rows[-1]["refused"] == [
        "analytics",
        "functional",
        "marketing",
    ]
    assert {(r["revision"], r["reason"], r["user_id"]) for r in rows} == {(1, "choice", None)}
    assert all(token not in str(r) for r in rows)


def test_the_ledger_refuses_updates(backend: tuple[object, str]) -> None:
    manager, ledger = managed(backend, FakeClock(NOW))
    session = manager.load_sync(None)
    session.consent.reject_all()
    manager.commit_sync(session)
    store, table = backend
    update = f"UPDATE {table} SET method = 'accept_all'"
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as conn, pytest.raises(sqlite3.DatabaseError):
            conn.execute(update)
    else:
        with admin_connect() as conn, pytest.raises(psycopg.errors.RaiseException):
            conn.execute(update)
    assert [r["method"] for r in ledger.rows()] == ["reject_all"]


def test_a_users_choice_applies_on_their_next_device(backend: tuple[object, str]) -> None:
    clock = FakeClock(NOW)
    manager, ledger = managed(backend, clock)
    laptop = manager.load_sync(None, ClientInfo(FIREFOX_LINUX, "203.0.113.9"))
    laptop.consent.grant("analytics")
    laptop.login("alice")
    manager.commit_sync(laptop)

    clock.advance(3600)
    phone = manager.load_sync(None, ClientInfo(SAFARI_IPHONE, "198.51.100.4"))
    assert not phone.consent.allows("analytics")  # a stranger until they log in
    phone.login("alice")
    token = manager.commit_sync(phone).token
    on_phone = manager.load_sync(token, ClientInfo(SAFARI_IPHONE, "198.51.100.4"))
    assert on_phone.consent.allows("analytics") and not on_phone.consent.allows("marketing")
    state = on_phone.consent.state
    assert state is not None and (state.at, state.method) == (NOW, "custom")

    rows = ledger.rows(user_id="alice")
    assert [(r["reason"], r["handle"]) for r in rows] == [
        ("choice", laptop.handle),
        ("recalled", on_phone.handle),
    ]
    # A newer choice on the device wins over an older recorded one.
    clock.advance(60)
    tablet = manager.load_sync(None)
    tablet.consent.reject_all()
    tablet.login("alice")
    manager.commit_sync(tablet)
    assert not tablet.consent.allows("analytics")
    last = ledger.rows(user_id="alice")[-1]  # the choice, made in the login's request
    assert (last["reason"], last["method"], last["user_id"]) == ("choice", "reject_all", "alice")


def test_export_and_erase_a_user(backend: tuple[object, str]) -> None:
    manager, ledger = managed(backend, FakeClock(NOW))
    visitor = manager.load_sync(None)
    visitor.consent.accept_all()
    token = manager.commit_sync(visitor).token  # before login: no user id on the row
    alice = manager.load_sync(token)
    alice.login("alice")
    manager.commit_sync(alice)
    bob = manager.load_sync(None)
    bob.consent.reject_all()
    bob.login("bob")
    manager.commit_sync(bob)

    assert isinstance(ledger, PersonalDataHolder) and DECLARED_HOLDERS["consent"] is ConsentLedger
    exported = asyncio.run(ledger.export_user("alice"))
    assert [(r["user_id"], r["reason"]) for r in exported["rows"]] == [
        (None, "choice"),  # hers: the same session, before she logged in
        ("alice", "login"),
    ]
    assert asyncio.run(ledger.erase_user("alice")) == 2
    assert asyncio.run(ledger.export_user("alice")) == {"rows": []}
    assert [r["user_id"] for r in ledger.rows()] == ["bob"]


def test_a_store_without_sql_needs_a_ledger_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="COATCHECK_CONSENT_URL"):
        ConsentLedger.beside(MemoryStore(), environ={})
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = ConsentLedger.beside(MemoryStore(), environ={"COATCHECK_CONSENT_URL": url})
    manager = ledger.attach(SessionManager(MemoryStore()))
    session = manager.load_sync(None)
    session.consent.grant("functional")
    manager.commit_sync(session)
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        (count,) = conn.execute("SELECT count(*) FROM coatcheck_consent_ledger").fetchone()
    assert count == 1
    with pytest.raises(ConfigError, match="not an SQL URL"):
        ConsentLedger("redis://localhost")


def test_purge_deletes_old_rows_in_batches(backend: tuple[object, str]) -> None:
    clock = FakeClock(NOW)
    manager, ledger = managed(backend, clock)
    for _ in range(5):
        session = manager.load_sync(None)
        session.consent.reject_all()
        manager.commit_sync(session)
        clock.advance(100)
    # Rows at NOW, NOW+100, ..., NOW+400: the three before NOW+250 go, two per statement.
    assert ledger.purge(NOW + 250, batch_size=2) == 3
    assert [r["recorded_at"] for r in ledger.rows()] == [NOW + 300, NOW + 400]
    with pytest.raises(ConfigError, match="batch_size"):
        ledger.purge(NOW, batch_size=0)
