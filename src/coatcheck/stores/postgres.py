"""PostgresStore: sessions in one PostgreSQL table, shared by every node of an app.

Why it looks the way it does:

- **One statement per store call.** Loading is one ``SELECT``; a commit's delta is one
  ``UPDATE`` on a ``jsonb`` column, ``data = (data - removed) || changed``, with the metadata
  columns in the same statement, so two requests that change different keys never lose each
  other's work and a revoked session is never resurrected (``WHERE key = ...`` matches
  nothing). Connections run in autocommit: a statement is its own transaction, with no
  ``BEGIN``/``COMMIT`` round trips around it. psycopg prepares a statement on a connection
  once it has run a few times, so steady traffic skips parsing and planning.
- **Written once, driven twice.** Each operation is a generator of SQL calls (the pattern
  of ``operations.py``); one driver runs it on a sync pool connection, the other on an
  async one, so the sync and async paths cannot drift apart.
- **A bounded time, always.** Waiting for a pool connection is bounded by ``pool_timeout``;
  a statement by the server's ``statement_timeout``; a dead peer by TCP keepalives and
  ``tcp_user_timeout``. Every failure becomes ``StoreUnavailable`` (503 at the edge).
- **Recovering without a restart.** After a server restart every pooled connection is dead.
  The pool's own ``check`` hook would cost a round trip per checkout and sleeps with backoff
  after the second failed check, so instead a checkout polls the socket (no round trip): a
  server that hung up leaves the idle socket readable, and such a connection is discarded
  and replaced at once. A short ``reconnect_timeout`` lets waiting requests trigger fresh
  connection attempts instead of queueing behind a long backoff.
- **Several nodes at once.** Migrations run under a transaction-scoped advisory lock;
  ``purge_expired`` deletes batches chosen with ``FOR UPDATE SKIP LOCKED``, each batch its
  own transaction, so concurrent sweepers never delete a row twice, never wait for each
  other and cannot deadlock.

Limits of ``jsonb`` (documented, not hidden): strings may not contain U+0000 (refused as
SessionDataError, naming the key), and numbers are kept as exact decimals, so a float
written with an exponent (``1e20``) reads back as an equal ``int``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import select
import threading
import time
import weakref
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from coatcheck.core.record import PATCHABLE_FIELDS, Patch, SessionRecord
from coatcheck.errors import SessionDataError, StoreUnavailable
from coatcheck.stores.base import ProcedureStore, process_id

T = TypeVar("T")

DEFAULT_TABLE = "coatcheck_sessions"
VERSION_TABLE = "coatcheck_schema"
"""One row per sessions table: the schema version its migrations reached."""

MIGRATIONS: Sequence[Sequence[str]] = (
    # 1: the sessions table, its expiry index and its per-user index. Times are epoch
    # seconds (double precision) so they round-trip the injected clock's floats exactly.
    (
        """
        CREATE TABLE {table} (
            key text PRIMARY KEY,
            handle text NOT NULL UNIQUE,
            user_id text,
            data jsonb NOT NULL,
            created_at double precision NOT NULL,
            last_seen_at double precision NOT NULL,
            expires_at double precision NOT NULL,
            absolute_at double precision NOT NULL,
            auth_at double precision,
            remember boolean NOT NULL DEFAULT false,
            user_agent text,
            ip text,
            meta jsonb NOT NULL DEFAULT '{{}}'
        )
        """,
        "CREATE INDEX {expires_index} ON {table} (expires_at)",
        "CREATE INDEX {user_index} ON {table} (user_id) WHERE user_id IS NOT NULL",
    ),
)
"""Schema migrations in order; ``{table}`` and the index names are filled in per table."""

SCHEMA_VERSION = len(MIGRATIONS)

MIGRATION_LOCK = int.from_bytes(hashlib.sha256(b"coatcheck.migrate").digest()[:8], signed=True)
"""Advisory lock key taken by every migration, whatever the table: creating the version
table concurrently under different locks would collide in PostgreSQL's catalog."""

_COLUMNS = (
    "key",
    "handle",
    "user_id",
    "data",
    "created_at",
    "last_seen_at",
    "expires_at",
    "absolute_at",
    "auth_at",
    "remember",
    "user_agent",
    "ip",
    "meta",
)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""A NUL character in JSON text: ``\\u0000`` after an even number of backslashes."""

_URL_OPTIONS = frozenset(
    {
        "table",
        "pool_min",
        "pool_max",
        "pool_timeout",
        "statement_timeout",
        "reconnect_timeout",
        "prepare_threshold",
        "migrate",
    }
)

Want = Literal["one", "all", "rowcount", "nothing"]


@dataclass(frozen=True, slots=True)
class _Call:
    """One SQL statement and what its caller wants back."""

    query: bytes
    params: Sequence[Any]
    want: Want


Steps = Generator[_Call, Any, T]
"""An operation: yields statements, receives their results, returns its answer."""


def _row_to_record(row: Sequence[Any]) -> SessionRecord:
    return SessionRecord(
        key=row[0],
        handle=row[1],
        user_id=row[2],
        data=row[3],
        created_at=row[4],
        last_seen_at=row[5],
        expires_at=row[6],
        absolute_at=row[7],
        auth_at=row[8],
        remember=row[9],
        user_agent=row[10],
        ip=row[11],
        meta=row[12],
    )


def _check_json(key: str, text: str) -> None:
    """jsonb cannot hold U+0000; say which key instead of a 503 that no retry can fix."""
    if "\x00" in key or ("\\u0000" in text and _NUL_ESCAPE.search(text)):
        raise SessionDataError(
            f"session[{key!r}] cannot be stored in PostgreSQL: jsonb cannot hold the "
            "character U+0000"
        )


def _field_value(name: str, value: Any) -> Any:
    if name == "meta":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if name == "remember":
        return bool(value)
    return value


def _poll_readable(fd: int) -> bool:
    """Non-blocking: has the peer sent anything (data, FIN, RST) on ``fd``?"""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # pragma: no cover (Windows)
    return bool(readable)


def _hung_up(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """True when an idle pooled connection is closed or the server spoke on it.

    The server never speaks first on an idle connection except to end it (a FATAL
    "terminating connection" on shutdown, or EOF), so readable means "probably dead";
    callers then confirm with a real round trip.
    """
    if conn.closed:
        return True
    try:
        return _poll_readable(conn.fileno())
    except (psycopg.Error, OSError, ValueError):
        return True


@dataclass
class _LoopState:
    """What the async side keeps per event loop (see ``PostgresStore._apools``)."""

    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    migrate_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class PostgresStore(ProcedureStore):
    """Sessions in a PostgreSQL table (``coatcheck_sessions`` by default).

    ``conninfo`` is a libpq URL or key/value string. Timeouts are in seconds:
    ``pool_timeout`` bounds the wait for a pooled connection (including while one is
    being established), ``connect_timeout`` one connection attempt, ``statement_timeout``
    one statement on the server (0 disables it, e.g. behind a pooler that refuses startup
    options). ``prepare_threshold=None`` disables prepared statements (PgBouncer in
    transaction mode before 1.21). ``migrate=False`` skips schema migrations for roles
    that may not run DDL; the schema must then exist.

    Pools open on first use (the async one inside the running loop that uses it). Close
    the store at shutdown (``await store.close()`` in an ASGI lifespan, ``close_sync()``
    for WSGI): psycopg_pool's background tasks must be stopped on their own event loop,
    or the loop's shutdown may wait for them.
    """

    def __init__(
        self,
        conninfo: str = "",
        *,
        table: str = DEFAULT_TABLE,
        min_size: int = 1,
        max_size: int = 10,
        pool_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        statement_timeout: float = 5.0,
        reconnect_timeout: float = 2.0,
        prepare_threshold: int | None = 5,
        migrate: bool = True,
    ) -> None:
        parts = table.split(".")
        if not 1 <= len(parts) <= 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
            raise ValueError(f"invalid table name {table!r}: use name or schema.name")
        if not 1 <= min_size <= max_size:
            raise ValueError(f"pool sizes must satisfy 1 <= min <= max, got {min_size}, {max_size}")
        for name, value in (
            ("pool_timeout", pool_timeout),
            ("connect_timeout", connect_timeout),
            ("reconnect_timeout", reconnect_timeout),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if statement_timeout < 0:
            raise ValueError(f"statement_timeout must be >= 0, got {statement_timeout!r}")
        self.table = table
        self.min_size = min_size
        self.max_size = max_size
        self.pool_timeout = pool_timeout
        self.reconnect_timeout = reconnect_timeout
        self.auto_migrate = migrate
        self._conninfo = self._build_conninfo(conninfo, connect_timeout, statement_timeout)
        params = conninfo_to_dict(self._conninfo)
        host, port = params.get("host", "localhost"), params.get("port", "5432")
        db = params.get("dbname", "")
        self._where = f"{host}:{port}/{db} table {table}"
        """Where the store points, for error messages: never the password."""
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "prepare_threshold": prepare_threshold,
        }
        self._sql = _Statements(parts)
        self._pid = process_id()
        self._new_locks()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._apools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        """The async side, per event loop: a pool belongs to the loop that opened it. Most
        apps run one loop; Django's async views under WSGI run each request on a new one
        (asgiref's ``async_to_sync``), whose pool goes when its loop does."""
        self._ready = not migrate

    def __repr__(self) -> str:
        return f"<PostgresStore {self._where}>"

    @staticmethod
    def _build_conninfo(conninfo: str, connect_timeout: float, statement_timeout: float) -> str:
        """libpq settings that bound every wait, unless the URL already chose them."""
        try:
            given = conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"invalid PostgreSQL connection string: {exc}") from None
        # A dead peer: unacknowledged data fails after tcp_user_timeout, an idle wait for
        # a reply after the keepalive probes; both a little beyond the statement timeout.
        bound = max(statement_timeout, connect_timeout) + 2
        extra: dict[str, Any] = {
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": "coatcheck",
            "keepalives": 1,
            "keepalives_idle": max(1, round(bound)),
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": int(bound * 1000),
        }
        extra = {k: v for k, v in extra.items() if k not in given}
        if statement_timeout > 0:
            setting = f"-c statement_timeout={int(statement_timeout * 1000)}"
            options = given.get("options")
            extra["options"] = f"{options} {setting}" if options else setting
        return make_conninfo(conninfo, **extra)

    # -- pools -------------------------------------------------------------------------
    def _pool_kwargs(self) -> dict[str, Any]:
        return {
            "kwargs": self._kwargs,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "timeout": self.pool_timeout,
            "reconnect_timeout": self.reconnect_timeout,
            "name": f"coatcheck:{self.table}",
            "open": False,
        }

    def _forked(self) -> bool:
        """A forked child must not touch its parent's sockets: start afresh."""
        if self._pid == process_id():
            return False
        self._pid = process_id()
        self._pool = None
        self._apools = weakref.WeakKeyDictionary()
        self._new_locks()
        self._ready = not self.auto_migrate
        return True

    def _new_locks(self) -> None:
        self._lock = threading.Lock()
        self._migrate_lock = threading.Lock()

    def _sync_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is not None and not self._forked():
            return pool
        with self._lock:
            pool = self._pool
            created = pool is None
            if pool is None:
                pool = self._pool = ConnectionPool(self._conninfo, **self._pool_kwargs())
                pool.open(wait=False)
        if created:
            # Wait for the first connections (bounded): otherwise the first request
            # finds the pool empty and makes it grow for nothing.
            try:
                pool.wait(timeout=self.pool_timeout)
            except BaseException:
                with self._lock:  # wait() closed it; the next call starts afresh
                    if self._pool is pool:
                        self._pool = None
                raise
        return pool

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._apools.get(loop)
        if state is None or self._forked():
            with self._lock:
                state = self._apools.setdefault(loop, _LoopState())
        return state

    async def _async_pool(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        state = self._loop_state()
        pool = state.pool
        if pool is not None:
            return pool
        async with state.lock:
            pool = state.pool
            created = pool is None
            if pool is None:
                pool = state.pool = AsyncConnectionPool(self._conninfo, **self._pool_kwargs())
                await pool.open(wait=False)
        if created:
            try:
                await pool.wait(timeout=self.pool_timeout)
            except BaseException:
                if state.pool is pool:
                    state.pool = None
                raise
        return pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        pool = self._sync_pool()
        deadline = time.monotonic() + self.pool_timeout
        while True:
            conn = pool.getconn(timeout=deadline - time.monotonic())
            if not _hung_up(conn):
                break
            try:
                conn.execute("")  # readable but maybe alive (a notice): ask for real
                break
            except psycopg.Error:
                conn.close()
                pool.putconn(conn)  # closed: the pool replaces it in the background
        try:
            yield conn
        finally:
            pool.putconn(conn)

    @asynccontextmanager
    async def _aconnection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        pool = await self._async_pool()
        deadline = time.monotonic() + self.pool_timeout
        while True:
            conn = await pool.getconn(timeout=deadline - time.monotonic())
            if not _hung_up(conn):
                break
            try:
                await conn.execute("")
                break
            except psycopg.Error:
                await conn.close()
                await pool.putconn(conn)
        try:
            yield conn
        finally:
            await pool.putconn(conn)

    def _translate(self, exc: psycopg.Error) -> Exception:
        """StoreUnavailable for anything the backend did wrong; SessionDataError for a
        value jsonb refuses (retrying would not help, so it must not look like a 503)."""
        if isinstance(exc, psycopg.errors.UntranslatableCharacter):
            return SessionDataError(f"PostgreSQL store {self._where}: {exc}")
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreUnavailable(f"PostgreSQL store {self._where}: {detail}")

    # -- drivers -----------------------------------------------------------------------
    def _drive_sync(self, steps: Steps[T], *, transaction: bool = False, setup: bool = True) -> T:
        try:
            if setup and not self._ready:
                self._migrate_sync()
            with self._connection() as conn:
                if transaction:
                    with conn.transaction():
                        return self._run_sync(conn, steps)
                return self._run_sync(conn, steps)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        finally:
            steps.close()

    @staticmethod
    def _run_sync(conn: psycopg.Connection[Any], steps: Steps[T]) -> T:
        result: Any = None
        try:
            while True:
                call = steps.send(result)
                cur = conn.execute(call.query, call.params)
                result = _result(cur.rowcount, cur.fetchone, cur.fetchall, call.want)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _drive_async(
        self, steps: Steps[T], *, transaction: bool = False, setup: bool = True
    ) -> T:
        try:
            if setup and not self._ready:
                await self._migrate_async()
            async with self._aconnection() as conn:
                if transaction:
                    async with conn.transaction():
                        return await self._run_async(conn, steps)
                return await self._run_async(conn, steps)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        finally:
            steps.close()

    @staticmethod
    async def _run_async(conn: psycopg.AsyncConnection[Any], steps: Steps[T]) -> T:
        result: Any = None
        try:
            while True:
                call = steps.send(result)
                cur = await conn.execute(call.query, call.params)
                if call.want == "one":
                    result = await cur.fetchone()
                elif call.want == "all":
                    result = await cur.fetchall()
                else:
                    result = _result(cur.rowcount, None, None, call.want)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    # -- migrations ----------------------------------------------------------------------
    def _migrate_steps(self) -> Steps[None]:
        """Bring the schema to SCHEMA_VERSION; run inside one transaction.

        The common case (already current) takes no lock and runs no DDL. Otherwise the
        advisory lock serializes nodes starting together, and the version is read again
        under it, so each migration runs exactly once.
        """
        q = self._sql
        exists = yield _Call(q.version_table_exists, (q.version_table_name,), "one")
        if exists[0]:
            row = yield _Call(q.read_version, (self.table,), "one")
            if row is not None and self._check_version(row[0]):
                return
        yield _Call(q.lock, (MIGRATION_LOCK,), "nothing")
        yield _Call(q.create_version_table, (), "nothing")
        row = yield _Call(q.read_version, (self.table,), "one")
        version = row[0] if row is not None else 0
        if self._check_version(version):
            return
        for number in range(version, SCHEMA_VERSION):
            for statement in q.migration(number):
                yield _Call(statement, (), "nothing")
        yield _Call(q.write_version, (self.table, SCHEMA_VERSION), "nothing")

    def _check_version(self, version: int) -> bool:
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"PostgreSQL store {self._where}: schema version {version} is newer than "
                f"this coatcheck ({SCHEMA_VERSION}); upgrade coatcheck"
            )
        return version == SCHEMA_VERSION

    def _migrate_sync(self, force: bool = False) -> None:
        with self._migrate_lock:
            if force or not self._ready:
                self._drive_sync(self._migrate_steps(), transaction=True, setup=False)
                self._ready = True

    async def _migrate_async(self, force: bool = False) -> None:
        async with self._loop_state().migrate_lock:
            if force or not self._ready:
                await self._drive_async(self._migrate_steps(), transaction=True, setup=False)
                self._ready = True

    def migrate_sync(self) -> None:
        """Apply pending migrations now (otherwise they run on first use, unless the
        store was made with ``migrate=False``)."""
        self._migrate_sync(force=True)

    async def migrate(self) -> None:
        await self._migrate_async(force=True)

    # -- operations (each written once) ----------------------------------------------------
    def _get(self, key: str) -> Steps[SessionRecord | None]:
        row = yield _Call(self._sql.get, (key,), "one")
        return _row_to_record(row) if row is not None else None

    def _create(self, record: SessionRecord) -> Steps[None]:
        data = json.dumps(record.data, separators=(",", ":"), ensure_ascii=False)
        if "\\u0000" in data:
            for k, v in record.data.items():
                _check_json(k, json.dumps(v))
        params = (
            record.key,
            record.handle,
            record.user_id,
            data,
            record.created_at,
            record.last_seen_at,
            record.expires_at,
            record.absolute_at,
            record.auth_at,
            bool(record.remember),
            record.user_agent,
            record.ip,
            json.dumps(record.meta, separators=(",", ":"), ensure_ascii=False),
        )
        yield _Call(self._sql.insert, params, "nothing")

    def _apply(self, key: str, patch: Patch) -> Steps[bool]:
        return self._update(key, None, patch)

    def _rename(self, old_key: str, new_key: str, patch: Patch) -> Steps[bool]:
        return self._update(old_key, new_key, patch)

    def _update(self, key: str, new_key: str | None, patch: Patch) -> Steps[bool]:
        """One UPDATE: rename, data delta and metadata together; False if no such row."""
        names = tuple(sorted(patch.fields))
        for name in names:
            if name not in PATCHABLE_FIELDS:
                raise ValueError(f"field {name!r} cannot be patched")
        guard = patch.expect_handle
        if not patch.touches_data and not names and new_key is None:
            row = yield _Call(self._sql.handle_of, (key,), "one")
            return row is not None and patch.fits(row[0])
        params: list[Any] = []
        if new_key is not None:
            params.append(new_key)
        if patch.touches_data:
            for k, v in patch.set_json.items():
                _check_json(k, v)
            params.append([k for k in patch.removed if "\x00" not in k])
            params.append(
                "{"
                + ",".join(
                    f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in patch.set_json.items()
                )
                + "}"
            )
        params.extend(_field_value(name, patch.fields[name]) for name in names)
        params.append(key)
        if guard is not None:
            params.append(guard)
        query = self._sql.update(new_key is not None, patch.touches_data, names, guard is not None)
        count = yield _Call(query, params, "rowcount")
        return bool(count == 1)

    def _delete(self, key: str) -> Steps[bool]:
        count = yield _Call(self._sql.delete, (key,), "rowcount")
        return bool(count == 1)

    def _get_by_handle(self, handle: str) -> Steps[SessionRecord | None]:
        row = yield _Call(self._sql.get_by_handle, (handle,), "one")
        return _row_to_record(row) if row is not None else None

    def _list_user(self, user_id: str, now: float) -> Steps[list[SessionRecord]]:
        rows = yield _Call(self._sql.list_user, (user_id, now), "all")
        return [_row_to_record(r) for r in rows]

    def _delete_handle(self, handle: str) -> Steps[SessionRecord | None]:
        row = yield _Call(self._sql.delete_handle, (handle,), "one")
        return _row_to_record(row) if row is not None else None

    def _delete_user(self, user_id: str, except_handle: str | None) -> Steps[int]:
        count = yield _Call(self._sql.delete_user, (user_id, except_handle), "rowcount")
        return int(count)

    def _purge(self, now: float, batch_size: int) -> Steps[int]:
        """Batches of at most ``batch_size`` rows, each its own (autocommit) transaction.

        Rows another sweeper has locked are skipped, not waited for: a short batch means
        "nothing left that nobody else is deleting", so the loop stops.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        total = 0
        while True:
            deleted = yield _Call(self._sql.purge, (now, batch_size), "rowcount")
            total += int(deleted)
            if deleted < batch_size:
                return total

    def _count(self, now: float) -> Steps[int]:
        row = yield _Call(self._sql.count, (now,), "one")
        return int(row[0])

    def _stats(self, now: float, top: int, soon: float) -> Steps[dict[str, Any]]:
        active, expiring = yield _Call(self._sql.count_soon, (now + soon, now), "one")
        users = yield _Call(self._sql.top_users, (now, top), "all")
        return {
            "active": int(active),
            "expiring_soon": int(expiring),
            "top_users": [(str(u), int(n)) for u, n in users],
        }

    def stats_sync(self, now: float, *, top: int = 10, soon: float = 300.0) -> dict[str, Any]:
        """For ``coatcheck stats``: live sessions, those ending within ``soon`` seconds,
        and the ``top`` users by number of live sessions (index scans on the deadline and
        the user)."""
        return self._drive_sync(self._stats(now, top, soon))

    # -- lifecycle ---------------------------------------------------------------------
    def close_sync(self) -> None:
        """Close the sync pool. An async pool must be closed with ``await close()``
        from its own event loop (one that ended takes its pool with it)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    async def close(self) -> None:
        state = self._apools.pop(asyncio.get_running_loop(), None)
        if state is not None and state.pool is not None:
            await state.pool.close()
        if self._pool is not None:
            await asyncio.to_thread(self.close_sync)


def _result(rowcount: int, fetchone: Any, fetchall: Any, want: Want) -> Any:
    if want == "one":
        return fetchone()
    if want == "all":
        return fetchall()
    if want == "rowcount":
        return rowcount
    return None


class _Statements:
    """Every statement the store runs, composed once per table as bytes.

    Patch statements depend on which fields a patch sets; the few shapes that occur
    (touch, update, login, ...) are composed on first use and cached, so psycopg sees
    identical query text and can prepare it.
    """

    def __init__(self, parts: Sequence[str]) -> None:
        schema, name = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
        table = sql.Identifier(*parts)
        self.table = table
        self._name = name
        version_parts = (schema, VERSION_TABLE) if schema else (VERSION_TABLE,)
        self.version_table_name = ".".join(version_parts)
        version_table = sql.Identifier(*version_parts)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS)

        def q(text: str, **extra: sql.Composable) -> bytes:
            composed = sql.SQL(text).format(table=table, cols=cols, vt=version_table, **extra)
            return composed.as_bytes(None)

        self.get = q("SELECT {cols} FROM {table} WHERE key = %s")
        self.handle_of = q("SELECT handle FROM {table} WHERE key = %s")
        self.insert = q(
            "INSERT INTO {table} ({cols}) VALUES "
            "(%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
        )
        self.delete = q("DELETE FROM {table} WHERE key = %s")
        self.get_by_handle = q("SELECT {cols} FROM {table} WHERE handle = %s")
        self.list_user = q(
            "SELECT {cols} FROM {table} WHERE user_id = %s AND expires_at > %s ORDER BY created_at"
        )
        self.delete_handle = q("DELETE FROM {table} WHERE handle = %s RETURNING {cols}")
        self.delete_user = q(
            "DELETE FROM {table} WHERE user_id = %s AND handle IS DISTINCT FROM %s"
        )
        self.purge = q(
            "WITH doomed AS (SELECT key FROM {table} WHERE expires_at <= %s "
            "LIMIT %s FOR UPDATE SKIP LOCKED) "
            "DELETE FROM {table} AS t USING doomed WHERE t.key = doomed.key"
        )
        self.count = q("SELECT count(*) FROM {table} WHERE expires_at > %s")
        self.count_soon = q(
            "SELECT count(*), count(*) FILTER (WHERE expires_at <= %s) FROM {table} "
            "WHERE expires_at > %s"
        )
        self.top_users = q(
            "SELECT user_id, count(*) AS n FROM {table} "
            "WHERE user_id IS NOT NULL AND expires_at > %s "
            "GROUP BY user_id ORDER BY n DESC, user_id LIMIT %s"
        )
        self.version_table_exists = b"SELECT to_regclass(%s) IS NOT NULL"
        self.lock = b"SELECT pg_advisory_xact_lock(%s)"
        self.create_version_table = q(
            "CREATE TABLE IF NOT EXISTS {vt} (name text PRIMARY KEY, "
            "version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        self.read_version = q("SELECT version FROM {vt} WHERE name = %s")
        self.write_version = q(
            "INSERT INTO {vt} (name, version) VALUES (%s, %s) ON CONFLICT (name) "
            "DO UPDATE SET version = EXCLUDED.version, applied_at = now()"
        )
        self._updates: dict[tuple[bool, bool, tuple[str, ...], bool], bytes] = {}

    def migration(self, number: int) -> list[bytes]:
        names = {
            "table": self.table,
            "expires_index": sql.Identifier(f"{self._name}_expires_idx"),
            "user_index": sql.Identifier(f"{self._name}_user_idx"),
        }
        return [sql.SQL(s).format(**names).as_bytes(None) for s in MIGRATIONS[number]]

    def update(self, rename: bool, data: bool, fields: tuple[str, ...], guarded: bool) -> bytes:
        """``UPDATE ... WHERE key = %s`` (``AND handle = %s`` when ``guarded``)."""
        shape = (rename, data, fields, guarded)
        query = self._updates.get(shape)
        if query is None:
            sets: list[sql.Composable] = []
            if rename:
                sets.append(sql.SQL("key = %s"))
            if data:
                sets.append(sql.SQL("data = (data - %s::text[]) || %s::jsonb"))
            for name in fields:
                cast = "::jsonb" if name == "meta" else ""
                sets.append(sql.SQL("{} = %s" + cast).format(sql.Identifier(name)))
            where = "key = %s AND handle = %s" if guarded else "key = %s"
            query = (
                sql.SQL("UPDATE {} SET {} WHERE " + where)
                .format(self.table, sql.SQL(", ").join(sets))
                .as_bytes(None)
            )
            self._updates[shape] = query
        return query


def from_url(url: str) -> PostgresStore:
    """``postgresql://user:pass@host:5432/db?table=...&pool_max=20``.

    coatcheck's own query options: ``table``, ``pool_min``, ``pool_max``, ``pool_timeout``,
    ``statement_timeout`` and ``reconnect_timeout`` (seconds), ``prepare_threshold`` (an
    int, or ``none``), ``migrate`` (``true``/``false``). ``connect_timeout`` and every
    other option are libpq's (``sslmode``, ``application_name``, ...).
    """
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    # libpq reads "+" literally (only %-escapes are decoded): so must we.
    for name, value in parse_qsl(parts.query.replace("+", "%2B"), keep_blank_values=True):
        if name in _URL_OPTIONS:
            ours[name] = value
        else:
            theirs.append((name, value))
    kwargs: dict[str, Any] = {}
    try:
        if "table" in ours:
            kwargs["table"] = ours["table"]
        if "pool_min" in ours:
            kwargs["min_size"] = int(ours["pool_min"])
        if "pool_max" in ours:
            kwargs["max_size"] = int(ours["pool_max"])
        for name in ("pool_timeout", "statement_timeout", "reconnect_timeout"):
            if name in ours:
                kwargs[name] = float(ours[name])
        if "prepare_threshold" in ours:
            value = ours["prepare_threshold"].strip().lower()
            kwargs["prepare_threshold"] = None if value in ("none", "off", "") else int(value)
        if "migrate" in ours:
            flag = ours["migrate"].strip().lower()
            if flag not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(f"migrate={ours['migrate']!r}")
            kwargs["migrate"] = flag in ("1", "true", "yes", "on")
        connect = [v for k, v in theirs if k == "connect_timeout"]
        if connect:
            kwargs["connect_timeout"] = float(connect[-1])
    except ValueError as exc:
        raise ValueError(f"invalid PostgreSQL store option in {_redact(url)!r}: {exc}") from None
    if "min_size" in kwargs and "max_size" not in kwargs:
        kwargs["max_size"] = max(kwargs["min_size"], 10)
    if "max_size" in kwargs and "min_size" not in kwargs:
        kwargs["min_size"] = min(1, kwargs["max_size"])
    # ...and a space must not be re-encoded as "+".
    query = urlencode(theirs, quote_via=quote)
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=query))
    return PostgresStore(conninfo, **kwargs)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
