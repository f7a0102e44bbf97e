"""Erased means gone from the files (GDPR Art. 17, Art. 32): after an erasure no byte of
the SQLite database or of its WAL still holds the user's id, data or device, while the
other users' data is still there; the stores coatcheck writes delete securely."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck.core.client import ClientInfo
from tests.support.postgres_server import admin_connect
from tests.support.privacy import World, world
from tests.support.user_agents import CHROME_WINDOWS, FIREFOX_LINUX

USER = "marker-user-5d1c"
DATA = "marker-data-9b47e"
AGENT = FIREFOX_LINUX + " marker-agent-e31a"
"""A real browser's user agent with a marker: kept reduced, so the marker never reaches
the files (the device is kept as ``Firefox 121 / Linux / desktop``)."""
DEVICE = "marker-device-c0a7"
"""The device's name, which the application keeps in the session's data."""
OTHER = "kept-data-of-another-user"


@pytest.fixture(params=["sqlite", "sqlite-apart"])
def w(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """Sessions and privacy tables in one SQLite file, or in two. Connections start with
    ``secure_delete`` off, as in SQLite's own default build (Debian's turns it on), so
    only what coatcheck sets counts."""
    connect = sqlite3.connect

    def off_by_default(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(sqlite3, "connect", off_by_default)
    with world(request.param, tmp_path) as built:
        yield built


def file_bytes(*paths: Path) -> bytes:
    """Each database file and its WAL, as they are on disk."""
    found = b""
    for path in paths:
        wal = path.with_name(path.name + "-wal")
        found += path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    return found


async def test_no_page_of_the_database_or_its_wal_holds_an_erased_user(w: World) -> None:
    assert w.path is not None
    handles = []
    for _ in range(3):  # several rows, events and consent rows, several page writes
        token = w.log_in(USER, AGENT, "203.0.113.7", grant=("analytics",), note=DATA)
        session = w.manager.load_sync(token, ClientInfo.from_raw(AGENT, "203.0.113.7"))
        session["note"] = DATA + "-changed"  # an update leaves the old value to scrub
        session["device"] = DEVICE
        w.manager.commit_sync(session)
        assert session.handle is not None
        handles.append(session.handle)
    w.log_in("someone-else", CHROME_WINDOWS, "198.51.100.1", grant=("analytics",), note=OTHER)
    exported = await w.registry.export(USER)  # flushes the activity log to the file
    assert len(exported["holders"]["consent"]["rows"]) == 3  # one grant per login
    files = sorted(w.path.parent.glob("*.db"))
    before = file_bytes(*files)
    for marker in (USER, DATA, DEVICE, *handles):
        assert marker.encode() in before  # the markers did reach the files
    assert b"marker-agent-e31a" not in before  # the raw user agent never did

    await w.registry.erase(USER)

    for path in files:
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0  # checkpointed, truncated
    after = file_bytes(*files)
    for marker in (USER, DATA, DEVICE, *handles):
        assert marker.encode() not in after
    assert OTHER.encode() in after  # the others' data stays


def test_the_sqlite_store_and_the_privacy_database_delete_securely(w: World) -> None:
    store = w.store
    assert hasattr(store, "connection")
    with store.connection() as conn:
        assert conn.execute("PRAGMA secure_delete").fetchone() == (1,)
    assert w.database.run(lambda cur: cur.execute("PRAGMA secure_delete").fetchone()) == (1,)


def test_postgresql_keeps_erased_bytes_until_vacuum_full(tmp_path: Path) -> None:
    """What docs/privacy.md asks of the operator: PostgreSQL leaves a deleted row's bytes
    in the table's file after the erasure; ``VACUUM (FULL)`` writes a file without them.
    (Reads the server's files: the test runs beside the server, as its owner or root.)"""
    with world("postgres", tmp_path) as w:
        w.log_in(USER, AGENT, "203.0.113.7", grant=("analytics",), note=DATA)
        holders = {h.name: h for h in w.registry.holders}
        # The activity log and the consent ledger (one row: the grant) both hold the id.
        tables = [holders["activity"].table, holders["consent"].table]  # type: ignore[attr-defined]
        admin = admin_connect()
        try:
            data_dir = Path(admin.execute("SHOW data_directory").fetchone()[0])

            def table_file(table: str) -> bytes:
                admin.execute("CHECKPOINT")
                rel = admin.execute("SELECT pg_relation_filepath(%s)", (table,)).fetchone()[0]
                path = data_dir / rel
                if not path.exists():
                    pytest.skip(f"the server's files are not readable here ({path})")
                return path.read_bytes()

            holders["activity"].flush()  # type: ignore[attr-defined]
            for table in tables:
                assert USER.encode() in table_file(table)
            erasure = asyncio.run(w.registry.erase(USER))
            assert erasure.removed["consent"] == 1
            for table in tables:
                assert USER.encode() in table_file(table)  # deleted, yet still in the file
                admin.execute(f"VACUUM (FULL) {table}")
                assert USER.encode() not in table_file(table)
        finally:
            admin.close()
