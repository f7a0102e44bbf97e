"""SQLiteStore: the embedded default. One file, safe for several processes at once.

WAL journaling lets readers proceed while a writer commits; a busy timeout makes writers
queue instead of failing; every commit is one UPDATE statement that edits only the changed
keys with ``json_set`` / ``json_remove``, so concurrent requests never lose each other's
keys. Expiry is an indexed ``expires_at`` column swept in small batches.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar, TypeVarTuple

from coatcheck.core.record import Patch, SessionRecord
from coatcheck.errors import StoreUnavailable
from coatcheck.stores.base import (
    InlineCountable,
    InlineHandleIndex,
    InlineLockable,
    InlinePurgeable,
    InlineStore,
    InlineUserIndex,
    Scannable,
    Statistics,
    process_id,
)
from coatcheck.stores.damage import sound, warn
from coatcheck.stores.sqlite_delta import (
    MAX_ARGS,
    TABLE,
    delta_sql,
    growth_bound,
    op_params,
    op_shape,
    update_sql,
    wants_delta_sql,
)
from coatcheck.stores.sqlite_locks import LOCKS, _acquire_lock, _release_lock

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


MIGRATIONS: Sequence[str] = (
    # 1: the sessions table, its expiry index and its per-user index.
    f"""
    CREATE TABLE {TABLE} (
        key TEXT NOT NULL UNIQUE,
        handle TEXT NOT NULL UNIQUE,
        user_id TEXT,
        data TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        absolute_at REAL NOT NULL,
        auth_at REAL,
        remember INTEGER NOT NULL DEFAULT 0,
        user_agent TEXT,
        ip TEXT,
        meta TEXT NOT NULL DEFAULT '{{}}'
    );
    CREATE INDEX {TABLE}_expires ON {TABLE} (expires_at);
    CREATE INDEX {TABLE}_user ON {TABLE} (user_id) WHERE user_id IS NOT NULL;
    """,
    # 2: per-session locks (``Lockable``), one row per held lock, with its lease.
    f"""
    CREATE TABLE {LOCKS} (
        key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
)
"""Schema migrations, applied in order; ``PRAGMA user_version`` records how many ran."""

SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "key, handle, user_id, data, created_at, last_seen_at, expires_at, absolute_at, "
    "auth_at, remember, user_agent, ip, meta"
)

_GET_SQL = f"SELECT {_COLUMNS} FROM {TABLE} WHERE key = ?"


def _fetch_one(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    return conn.execute(sql, params).fetchone()


_SCAN_SQL = f"SELECT {_COLUMNS} FROM {TABLE} WHERE key > ? ORDER BY key LIMIT ?"


def _fetch_all(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


_PURGE_SQL = (
    f"DELETE FROM {TABLE} WHERE rowid IN (SELECT rowid FROM {TABLE} WHERE expires_at <= ? LIMIT ?)"
)


def _purge_batch(conn: sqlite3.Connection, now: float, batch_size: int) -> int:
    """Delete up to ``batch_size`` expired rows in one (autocommit) transaction."""
    return int(conn.execute(_PURGE_SQL, (now, batch_size)).rowcount)


_PRIVATE_PATHS = frozenset({":memory:", ""})
"""Paths that give every connection a database of its own (in memory, or a temporary
file): such a store works only while it never has two connections open at once."""


_UNQUOTABLE = re.compile(r'[\x00-\x1f"\\]').search
"""What a key may not hold to be quoted as ``$."key"``: a quote or a backslash (path
syntax), or a control character, which SQLite's JSON writes escaped (``\\u001f``) and its
paths then no longer match (a removal would miss, a second set would add a twin key)."""


def _quotable(key: str) -> bool:
    """Can SQLite's JSON path syntax name ``key`` as ``$."key"``?"""
    return _UNQUOTABLE(key) is None


def _row_to_record(row: Sequence[Any]) -> SessionRecord:
    key, handle, user_id, data, created, seen, expires, absolute, auth, remember, ua, ip, meta = row
    return SessionRecord(
        key,
        handle,
        _loads(data),
        created,
        seen,
        expires,
        absolute,
        user_id,
        auth,
        bool(remember),
        ua,
        ip,
        _loads(meta) if meta != "{}" else {},
    )


def _sound(row: Sequence[Any] | None) -> SessionRecord | None:
    """The record of ``row``, or None (with a warning) when the row was damaged outside
    the store: data or meta not JSON text, a field of the wrong type."""
    if row is None:
        return None
    try:
        record = _row_to_record(row)
    except (ValueError, TypeError):  # not JSON, or not text at all (a number, a blob)
        warn("SQLite", "data or meta is not JSON text", row[1])
        return None
    return sound(record, "SQLite")


_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The decoder's scanner (C when available): what ``json.loads`` ends up calling."""


def _loads(text: str) -> Any:
    """``json.loads(text)``, calling the C scanner directly for the minified JSON this
    store writes (``json.loads`` is two Python layers around it); anything else (spaces
    around the value, garbage) goes to ``json.loads`` for its answer or its error."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def _field_value(name: str, value: Any) -> Any:
    if name == "meta":
        return json.dumps(value, separators=(",", ":"))
    if name == "remember":
        return int(bool(value))
    return value


_CONVERTED_FIELDS = frozenset({"meta", "remember"})
"""Fields whose column value is not the field's value (``_field_value``)."""

_DELTA_SQL: dict[tuple[Any, ...], str] = {}
"""``sqlite_delta.delta_sql`` statements by the shape of their patch."""


def _path(key: str) -> str:
    return f'$."{key}"'


def _dumps(data: dict[str, Any]) -> str:
    """Data as this store writes it: compact, UTF-8 kept (the size ``max_bytes`` counts)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL, once. Changing the journal mode needs the file to itself and
    answers "database is locked" at once, without the busy timeout, while another
    connection is in it (two first connections of a new file): so it is done only when
    the file is not WAL yet, and tried again for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class SQLiteStore(
    InlineStore,
    InlineHandleIndex,
    InlineUserIndex,
    InlinePurgeable,
    InlineCountable,
    Statistics,
    InlineLockable,
    Scannable,
):
    """Sessions in one SQLite file (or ``:memory:`` for a throwaway database).

    ``max_idle`` bounds the pooled idle connections. ``timeout`` is how long a writer
    waits for another process's transaction (seconds) before the operation fails as
    StoreUnavailable; ``synchronous`` is SQLite's durability
    setting: NORMAL survives a crash of the app process (the WAL is in the OS cache),
    FULL also survives a power loss at the cost of an fsync per commit.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        synchronous: str = "NORMAL",
        max_idle: int = 8,
    ) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"invalid synchronous setting {synchronous!r}")
        self.synchronous = synchronous.upper()
        self.max_idle = max_idle
        self._idle: list[sqlite3.Connection] = []
        self._pid = process_id()
        self._ready = False
        self._ready_lock = threading.Lock()

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        # A deleted session's bytes are overwritten, not left in a free page of the file
        # (an erased user must be gone from the file too: coatcheck.privacy).
        conn.execute("PRAGMA secure_delete = ON")
        if self.path != ":memory:":
            _wal(conn, self.timeout)
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        return conn

    def _acquire(self) -> sqlite3.Connection:
        """An idle connection, or a new one (created and migrated on first use).

        Connections are pooled rather than kept per thread: a thread-per-request server
        would otherwise leave one open file per finished thread. A connection is used by
        one caller at a time, in any thread; after a fork the parent's are abandoned.
        """
        if self._pid != process_id():
            self._idle = []
            self._pid = process_id()
        try:
            return self._idle.pop()  # atomic under the GIL
        except IndexError:
            pass
        conn = self._connect()
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    try:
                        self._migrate(conn)
                    except BaseException:
                        conn.close()
                        raise
                    self._ready = True
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        if len(self._idle) < self.max_idle and self._pid == process_id():
            self._idle.append(conn)
        else:
            conn.close()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Borrow a pooled connection (administration, diagnostics, tests)."""
        conn = self._acquire()
        try:
            yield conn
        finally:
            self._release(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"{self.path}: schema version {version} is newer than this coatcheck "
                    f"({SCHEMA_VERSION}); upgrade coatcheck"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _run(self, operation: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
        """``operation(conn, *args)`` on a pooled connection, SQLite errors as
        StoreUnavailable. (Arguments are passed on rather than closed over: the hot
        operations then build no closure per call.)"""
        try:
            conn = self._acquire()
        except StoreUnavailable:
            raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path!r}: {exc}") from exc
        try:
            return operation(conn, *args)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path!r}: {exc}") from exc
        finally:
            self._release(conn)

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- statements --------------------------------------------------------------------
    def _update(
        self, conn: sqlite3.Connection, key: str, new_key: str | None, patch: Patch
    ) -> bool:
        removed, set_json, fields = patch.removed, patch.set_json, patch.fields
        rename = new_key is not None
        head: list[Any] = [new_key] if rename else []
        tail = [_field_value(n, v) if n in _CONVERTED_FIELDS else v for n, v in fields.items()]
        guard = patch.expect_handle
        tail.append(key)
        if guard is not None:
            tail.append(guard)
        if wants_delta_sql(patch):
            return self._update_delta(conn, key, patch, head, tail)
        if all(map(_quotable, removed)) and all(map(_quotable, set_json)):
            if not (removed or set_json or fields or rename):
                row = conn.execute(f"SELECT handle FROM {TABLE} WHERE key = ?", (key,)).fetchone()
                return row is not None and patch.fits(row[0])
            sql = update_sql(
                len(removed), len(set_json), tuple(fields), rename, False, guard is not None
            )
            params = head + [f'$."{k}"' for k in removed]
            for k, v in set_json.items():
                params += (f'$."{k}"', v)
            return conn.execute(sql, params + tail).rowcount == 1
        # Keys with quotes: merge in Python under the write lock (still atomic).
        with self._write(conn):
            row = conn.execute(f"SELECT data, handle FROM {TABLE} WHERE key = ?", (key,)).fetchone()
            if row is None or not patch.fits(row[1]):
                return False
            data = patch.new_data(json.loads(row[0]))  # raises (rolled back) when refused
            sql = update_sql(0, 0, tuple(fields), rename, True, guard is not None)
            conn.execute(sql, [*head, _dumps(data), *tail])
            return True

    def _update_delta(
        self, conn: sqlite3.Connection, key: str, patch: Patch, head: list[Any], tail: list[Any]
    ) -> bool:
        """A delta with atomic operations or a size limit: one UPDATE whose WHERE holds
        their rules (``sqlite_delta``); when it changes nothing although the record is
        there, the merge in Python under the write lock, which names the refusal."""
        removed, set_json, ops = patch.removed, patch.set_json, patch.ops
        shape = None
        keys = [*removed, *set_json, *(op[1] for op in ops)]
        # One statement's functions take at most MAX_ARGS arguments (two per key at most):
        # a longer delta is merged in Python below, still atomically.
        if 2 * len(keys) < MAX_ARGS and all(map(_quotable, keys)):
            shape = op_shape(ops)
        if shape is not None:
            limited = patch.max_bytes is not None
            guarded = patch.expect_handle is not None
            fields = tuple(patch.fields)
            cache_key = (len(removed), len(set_json), shape, fields, bool(head), guarded, limited)
            sql = _DELTA_SQL.get(cache_key)
            if sql is None:
                sql = delta_sql(
                    TABLE, len(removed), len(set_json), shape, fields, bool(head), guarded, limited
                )
                if len(_DELTA_SQL) < 4096:
                    _DELTA_SQL[cache_key] = sql
            params = head + [_path(k) for k in removed]
            for k, v in set_json.items():
                params += (_path(k), v)
            params += op_params(ops, _path)
            params += tail
            if limited:
                params += (growth_bound(patch), patch.max_bytes)
            if conn.execute(sql, params).rowcount == 1:
                return True
        with self._write(conn):
            row = conn.execute(f"SELECT data, handle FROM {TABLE} WHERE key = ?", (key,)).fetchone()
            if row is None or not patch.fits(row[1]):
                return False
            data = patch.new_data(json.loads(row[0]))  # raises (rolled back) when refused
            sql = update_sql(
                0, 0, tuple(patch.fields), bool(head), True, patch.expect_handle is not None
            )
            conn.execute(sql, [*head, _dumps(data), *tail])
            return True

    # -- contract ----------------------------------------------------------------------
    def get_sync(self, key: str) -> SessionRecord | None:
        return _sound(self._run(_fetch_one, _GET_SQL, (key,)))

    def create_sync(self, record: SessionRecord) -> None:
        values = (
            record.key,
            record.handle,
            record.user_id,
            json.dumps(record.data, separators=(",", ":"), ensure_ascii=False),
            record.created_at,
            record.last_seen_at,
            record.expires_at,
            record.absolute_at,
            record.auth_at,
            int(record.remember),
            record.user_agent,
            record.ip,
            json.dumps(record.meta, separators=(",", ":")),
        )
        self._run(
            lambda conn: conn.execute(
                f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", values
            )
        )

    def apply_sync(self, key: str, patch: Patch) -> bool:
        return self._run(self._update, key, None, patch)

    def rename_sync(self, old_key: str, new_key: str, patch: Patch) -> bool:
        return self._run(self._update, old_key, new_key, patch)

    def delete_sync(self, key: str) -> bool:
        return self._run(
            lambda conn: conn.execute(f"DELETE FROM {TABLE} WHERE key = ?", (key,)).rowcount == 1
        )

    def get_by_handle_sync(self, handle: str) -> SessionRecord | None:
        def op(conn: sqlite3.Connection) -> SessionRecord | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM {TABLE} WHERE handle = ?", (handle,)
            ).fetchone()
            return _sound(row)

        return self._run(op)

    def list_user_sync(self, user_id: str, now: float) -> list[SessionRecord]:
        def op(conn: sqlite3.Connection) -> list[SessionRecord]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM {TABLE} WHERE user_id = ? AND expires_at > ? "
                "ORDER BY created_at",
                (user_id, now),
            ).fetchall()
            return [r for r in map(_sound, rows) if r is not None]

        return self._run(op)

    def delete_handle_sync(self, handle: str) -> SessionRecord | None:
        def op(conn: sqlite3.Connection) -> SessionRecord | None:
            row = conn.execute(
                f"DELETE FROM {TABLE} WHERE handle = ? RETURNING {_COLUMNS}", (handle,)
            ).fetchone()
            return _sound(row)

        return self._run(op)

    def delete_user_sync(self, user_id: str, except_handle: str | None = None) -> int:
        return self._run(
            lambda conn: (
                conn.execute(
                    f"DELETE FROM {TABLE} WHERE user_id = ? AND handle IS NOT ?",
                    (user_id, except_handle),
                ).rowcount
            )
        )

    def scan_sync(self, cursor: str, count: int) -> tuple[list[SessionRecord], str | None]:
        """In the order of the storage keys: the cursor is the last key returned."""
        rows = self._run(_fetch_all, _SCAN_SQL, (cursor, count))
        if len(rows) < count:
            return [r for r in map(_sound, rows) if r is not None], None
        return [r for r in map(_sound, rows) if r is not None], str(rows[-1][0])

    def purge_expired_sync(self, now: float, batch_size: int) -> int:
        """One short transaction per batch: readers (WAL) never wait, and other writers
        wait at most one batch. The connection goes back to the pool between batches, so
        a long purge never keeps one from other callers for more than a batch (the async
        path runs this on a worker thread while request handlers borrow connections)."""
        total = 0
        while True:
            deleted = self._run(_purge_batch, now, batch_size)
            total += deleted
            if deleted < batch_size:
                return total

    async def purge_expired(self, now: float, batch_size: int) -> int:
        if self.path in _PRIVATE_PATHS:
            # Each connection to such a path opens its own, empty database: a request
            # served while the purge held the one connection would open a second one.
            # Inline, as the other async methods, only one connection is ever open.
            return self.purge_expired_sync(now, batch_size)
        return await super().purge_expired(now, batch_size)

    def count_sync(self, now: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(f"SELECT count(*) FROM {TABLE} WHERE expires_at > ?", (now,))
            return int(row.fetchone()[0])

        return self._run(op)

    def stats_sync(self, now: float, *, top: int = 10, soon: float = 300.0) -> dict[str, Any]:
        """For ``coatcheck stats``: live sessions, those ending within ``soon`` seconds,
        and the ``top`` users by number of live sessions."""

        def op(conn: sqlite3.Connection) -> dict[str, Any]:
            active, expiring = conn.execute(
                f"SELECT count(*), count(CASE WHEN expires_at <= ? THEN 1 END) FROM {TABLE} "
                "WHERE expires_at > ?",
                (now + soon, now),
            ).fetchone()
            users = conn.execute(
                f"SELECT user_id, count(*) AS n FROM {TABLE} "
                "WHERE user_id IS NOT NULL AND expires_at > ? "
                "GROUP BY user_id ORDER BY n DESC, user_id LIMIT ?",
                (now, top),
            ).fetchall()
            return {
                "active": int(active),
                "expiring_soon": int(expiring),
                "top_users": [(str(u), int(n)) for u, n in users],
            }

        return self._run(op)

    def acquire_lock_sync(self, key: str, owner: str, now: float, lease: float) -> bool:
        return self._run(_acquire_lock, key, owner, now, lease)

    def release_lock_sync(self, key: str, owner: str) -> bool:
        return self._run(_release_lock, key, owner)

    def close_sync(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(sqlite3.Error):
                conn.close()
