"""What the embedded SQLite default promises beyond the shared contract: WAL, migrations,
batched purge over the expiry index, and one file shared by several processes."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from coatcheck import StoreUnavailable, tokens
from coatcheck.model import Patch
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


def test_readers_keep_reading_while_a_big_purge_runs(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    live = make_record(expires_at=NOW + 60)
    store.create_sync(live)
    rows = [
        (tokens.storage_key(tokens.new_token()), tokens.new_handle(), NOW - 1)
        for _ in range(30_000)
    ]
    with store.connection() as conn:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO coatcheck_sessions (key, handle, data, created_at, last_seen_at, "
            "expires_at, absolute_at) VALUES (?, ?, '{}', 0, 0, ?, ?)",
            [(k, h, e, e) for k, h, e in rows],
        )
        conn.execute("COMMIT")
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
