"""What the embedded SQLite default promises beyond the shared contract: WAL, migrations,
batched purge over the expiry index, and one file shared by several processes."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from coatcheck import StoreUnavailable
from coatcheck.core import tokens
from coatcheck.core.record import Patch
from coatcheck.stores import SQLiteStore, from_url
from coatcheck.stores.sqlite import SCHEMA_VERSION
from tests.conformance.test_store_contract import NOW, make_record


def test_file_uses_wal_and_records_schema_version(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    store.create_sync(make_record())
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close_sync()


def test_migrations_run_once_for_many_stores(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    stores = [SQLiteStore(path) for _ in range(4)]
    threads = [threading.Thread(target=s.count_sync, args=(NOW,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    record = make_record()
    stores[0].create_sync(record)
    assert stores[3].get_sync(record.key) == record
    for s in stores:
        s.close_sync()


def test_a_newer_schema_is_refused_not_clobbered(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SQLiteStore(path)
    with pytest.raises(StoreUnavailable, match="newer"):
        store.get_sync(tokens.storage_key(tokens.new_token()))
    store.close_sync()


def test_purge_deletes_in_batches_over_the_expiry_index(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    for i in range(25):
        store.create_sync(make_record(expires_at=NOW - i - 1))
    store.create_sync(make_record(expires_at=NOW + 60))
    statements: list[str] = []
    with store.connection() as conn:  # the pool hands the same idle connection back
        conn.set_trace_callback(statements.append)
    assert store.purge_expired_sync(NOW, 10) == 25
    with store.connection() as conn:
        conn.set_trace_callback(None)
        deletes = [s for s in statements if s.lstrip().upper().startswith("DELETE")]
        assert len(deletes) == 3  # 10 + 10 + 5: one short transaction per batch
        plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + deletes[0]))
    assert "coatcheck_sessions_expires" in plan
    assert store.count_sync(NOW) == 1
    store.close_sync()


def _add_expired(store: SQLiteStore, count: int) -> None:
    """``count`` bare expired rows, inserted in one transaction (fast)."""
    rows = [
        (tokens.storage_key(tokens.new_token()), tokens.new_handle(), NOW - 1) for _ in range(count)
    ]
    with store.connection() as conn:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO coatcheck_sessions (key, handle, data, created_at, last_seen_at, "
            "expires_at, absolute_at) VALUES (?, ?, '{}', 0, 0, ?, ?)",
            [(k, h, e, e) for k, h, e in rows],
        )
        conn.execute("COMMIT")


def test_readers_keep_reading_while_a_big_purge_runs(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    live = make_record(expires_at=NOW + 60)
    store.create_sync(live)
    _add_expired(store, 30_000)
    reader = SQLiteStore(path, timeout=0.5)
    done = threading.Event()
    reads: list[bool] = []
    errors: list[Exception] = []

    def read() -> None:
        while not done.is_set():
            try:
                reads.append(reader.get_sync(live.key) is not None)
            except StoreUnavailable as exc:  # a blocked reader would time out here
                errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        assert store.purge_expired_sync(NOW, 500) == 30_000
    finally:
        done.set()
        thread.join()
    assert errors == []
    assert reads
    assert all(reads)
    store.close_sync()
    reader.close_sync()


async def test_async_purge_leaves_the_event_loop_responsive(tmp_path: Path) -> None:
    """``await store.purge_expired()`` runs its batches off the loop: other tasks keep
    running while it works (inline, the loop would stall for the whole purge)."""
    store = SQLiteStore(tmp_path / "s.db")
    live = [make_record(expires_at=NOW + 60) for _ in range(3)]
    for record in live:
        store.create_sync(record)
    _add_expired(store, 30_000)
    purging = True
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while purging:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # the ticker is running before the purge starts
    started = time.perf_counter()
    try:
        deleted = await store.purge_expired(NOW, 500)
        elapsed = time.perf_counter() - started
    finally:
        purging = False
        await ticker
    assert deleted == 30_000
    for record in live:
        assert store.get_sync(record.key) == record
    assert store.count_sync(NOW) == 3
    assert store.count_sync(0) == 3  # no expired row left either
    assert max(gaps) < elapsed / 4, (max(gaps), elapsed)
    store.close_sync()


async def test_async_purge_of_a_memory_database_stays_on_its_one_connection() -> None:
    """Every connection to ``:memory:`` is a database of its own: the purge runs inline
    there, so requests served meanwhile never open a second (empty) one."""
    store = SQLiteStore(":memory:")
    live = make_record(expires_at=NOW + 60)
    store.create_sync(live)
    for _ in range(2_000):
        store.create_sync(make_record(expires_at=NOW - 1))

    async def read() -> list[bool]:
        found = []
        for _ in range(20):
            found.append(await store.get(live.key) is not None)
            await asyncio.sleep(0)
        return found

    deleted, found = await asyncio.gather(store.purge_expired(NOW, 10), read())
    assert deleted == 2_000
    assert all(found)
    assert len(store._idle) == 1
    store.close_sync()


def _writer(path: str, worker: int, key: str) -> None:
    store = SQLiteStore(path, timeout=30)
    for i in range(50):
        value = {f"w{worker}-{i}": i}
        ok = store.apply_sync(
            key,
            Patch(
                set_json={k: json.dumps(v) for k, v in value.items()},
                set_items=value,
            ),
        )
        assert ok
    store.close_sync()


def test_several_processes_share_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    store = SQLiteStore(path)
    record = make_record(data={})
    store.create_sync(record)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, record.key)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    loaded = store.get_sync(record.key)
    assert loaded is not None
    assert loaded.data == {f"w{w}-{i}": i for w in range(4) for i in range(50)}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close_sync()


def test_sqlite_urls(tmp_path: Path) -> None:
    store = from_url(f"sqlite:///{tmp_path}/a.db?timeout=2&synchronous=full")
    assert isinstance(store, SQLiteStore)
    assert store.path == f"{tmp_path}/a.db"
    assert (store.timeout, store.synchronous) == (2.0, "FULL")
    rel = from_url("sqlite:///relative.db")
    assert isinstance(rel, SQLiteStore)
    assert rel.path == "relative.db"
    absolute = from_url("sqlite:////var/tmp/x.db")
    assert isinstance(absolute, SQLiteStore)
    assert absolute.path == "/var/tmp/x.db"
    for bad in ("sqlite://host/x.db", "sqlite:///", "sqlite:///x.db?colour=blue", "nope://x"):
        with pytest.raises(ValueError):  # noqa: PT011
            from_url(bad)


def test_connections_are_pooled_not_leaked_per_thread(tmp_path: Path) -> None:
    """A thread-per-request server must not leave one open connection per thread."""
    store = SQLiteStore(tmp_path / "s.db", max_idle=4)
    record = make_record()
    store.create_sync(record)
    for _ in range(50):
        t = threading.Thread(target=store.get_sync, args=(record.key,))
        t.start()
        t.join()
    assert len(store._idle) == 1
    barrier = threading.Barrier(10)

    def busy() -> None:
        barrier.wait()
        for _ in range(20):
            store.get_sync(record.key)

    threads = [threading.Thread(target=busy) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store._idle) <= 4
    store.close_sync()
    assert store._idle == []


def test_a_row_damaged_in_the_file_is_a_fresh_session_not_an_error(tmp_path: Path) -> None:
    """Bad JSON in the file (an edit outside coatcheck) loads as no record: the request
    gets a fresh session, as with an unknown token, never a traceback."""
    from coatcheck import SessionManager

    store = SQLiteStore(tmp_path / "s.db")
    manager = SessionManager(store)
    session = manager.load_sync(None)
    session["cart"] = ["hat"]
    token = manager.commit_sync(session).token
    assert token is not None
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute(
            "UPDATE coatcheck_sessions SET data = '{not json' WHERE key = ?",
            (tokens.storage_key(token),),
        )
    assert store.get_sync(tokens.storage_key(token)) is None
    again = manager.load_sync(token)
    assert again.is_new and dict(again) == {}
    store.close_sync()
