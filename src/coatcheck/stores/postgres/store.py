"""PostgresStore: the store contract as procedures of SQL calls, driven on pooled connections.

Each operation is written once, as a generator of ``Call`` (``coatcheck.core.steps``); the
core drivers run it, ``drive_sync`` on a sync pool connection and ``drive_async`` on the
running loop's async one, each with an executor that runs one ``Call`` on that connection.
The connection, the transaction (migrations only) and the translation of psycopg errors
stay around the driver call, so the sync and async paths cannot drift apart.
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from coatcheck.core.atomic import SWAP
from coatcheck.core.record import PATCHABLE_FIELDS, Patch, SessionRecord
from coatcheck.core.steps import Steps, drive_async, drive_sync
from coatcheck.errors import SessionDataError, StoreUnavailable
from coatcheck.stores.base import (
    ProcedureCountable,
    ProcedureHandleIndex,
    ProcedureLockable,
    ProcedurePurgeable,
    ProcedureUserIndex,
    Scannable,
    Statistics,
)
from coatcheck.stores.damage import sound
from coatcheck.stores.postgres import delta
from coatcheck.stores.postgres.migrations import migrate_steps
from coatcheck.stores.postgres.pool import Pools, build_conninfo, reply_bound
from coatcheck.stores.postgres.sql import (
    DEFAULT_TABLE,
    IDENTIFIER,
    Call,
    Statements,
    check_json,
    field_value,
    row_to_record,
)

T = TypeVar("T")


def _sound(row: Any) -> SessionRecord | None:
    """The record of ``row``; None for no row, or (with a warning) for one damaged
    outside the store (jsonb that is not an object, NULL or NaN in a column)."""
    return sound(row_to_record(row), "PostgreSQL") if row is not None else None


def _execute_sync(conn: psycopg.Connection[Any], call: Call) -> Any:
    """Run one statement; answer what the procedure asked for."""
    cur = conn.execute(call.query, call.params)
    want = call.want
    if want == "one":
        return cur.fetchone()
    if want == "all":
        return cur.fetchall()
    if want == "rowcount":
        return cur.rowcount
    return None


async def _execute_async(conn: psycopg.AsyncConnection[Any], call: Call) -> Any:
    cur = await conn.execute(call.query, call.params)
    want = call.want
    if want == "one":
        return await cur.fetchone()
    if want == "all":
        return await cur.fetchall()
    if want == "rowcount":
        return cur.rowcount
    return None


class PostgresStore(
    ProcedureHandleIndex,
    ProcedureUserIndex,
    ProcedurePurgeable,
    ProcedureCountable,
    Statistics,
    ProcedureLockable,
    Scannable,
):
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
        _check_settings(
            table,
            min_size,
            max_size,
            pool_timeout=pool_timeout,
            connect_timeout=connect_timeout,
            reconnect_timeout=reconnect_timeout,
            statement_timeout=statement_timeout,
        )
        self.table = table
        self.min_size = min_size
        self.max_size = max_size
        self.pool_timeout = pool_timeout
        self.reconnect_timeout = reconnect_timeout
        self.auto_migrate = migrate
        conninfo = build_conninfo(conninfo, connect_timeout, statement_timeout)
        self.conninfo = conninfo
        """The connection string in force (holds the password: never log it). Other tables
        of coatcheck that live beside the sessions (the consent ledger) connect with it."""
        params = conninfo_to_dict(conninfo)
        host, port = params.get("host", "localhost"), params.get("port", "5432")
        db = params.get("dbname", "")
        self._where = f"{host}:{port}/{db} table {table}"
        """Where the store points, for error messages: never the password."""
        self._sql = Statements(table.split("."))
        self._delta_sql: dict[tuple[Any, ...], bytes] = {}
        self._pools = Pools(
            conninfo,
            name=f"coatcheck:{table}",
            min_size=min_size,
            max_size=max_size,
            timeout=pool_timeout,
            reconnect_timeout=reconnect_timeout,
            prepare_threshold=prepare_threshold,
            on_fork=self._after_fork,
            reply_timeout=reply_bound(connect_timeout, statement_timeout),
        )
        self._migrate_lock = threading.Lock()
        self._ready = not migrate

    def __repr__(self) -> str:
        return f"<PostgresStore {self._where}>"

    def _after_fork(self) -> None:
        """A forked child checks the schema again, under locks of its own."""
        self._migrate_lock = threading.Lock()
        self._ready = not self.auto_migrate

    def _translate(self, exc: psycopg.Error) -> Exception:
        """StoreUnavailable for anything the backend did wrong; SessionDataError for a
        value jsonb refuses (retrying would not help, so it must not look like a 503)."""
        if isinstance(exc, psycopg.errors.UntranslatableCharacter):
            return SessionDataError(f"PostgreSQL store {self._where}: {exc}")
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreUnavailable(f"PostgreSQL store {self._where}: {detail}")

    # -- drivers: a connection (and a transaction) around the core drivers -----------------
    def _drive_sync(self, steps: Steps[T], *, transaction: bool = False, setup: bool = True) -> T:
        try:
            if setup and not self._ready:
                self._migrate_sync()
            with self._pools.connection() as conn:
                execute = functools.partial(_execute_sync, conn)
                if transaction:
                    with conn.transaction():
                        return drive_sync(steps, execute)
                return drive_sync(steps, execute)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        finally:
            steps.close()

    async def _drive_async(
        self, steps: Steps[T], *, transaction: bool = False, setup: bool = True
    ) -> T:
        try:
            if setup and not self._ready:
                await self._migrate_async()
            async with self._pools.aconnection() as conn:
                execute = functools.partial(_execute_async, conn)
                if transaction:
                    async with conn.transaction():
                        return await drive_async(steps, execute)
                return await drive_async(steps, execute)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc
        finally:
            steps.close()

    # -- migrations (see migrations.py) ----------------------------------------------------
    def _migrate_sync(self, force: bool = False) -> None:
        with self._migrate_lock:
            if force or not self._ready:
                steps = migrate_steps(self._sql, self.table, self._where)
                self._drive_sync(steps, transaction=True, setup=False)
                self._ready = True

    async def _migrate_async(self, force: bool = False) -> None:
        async with self._pools.loop_state().migrate_lock:
            if force or not self._ready:
                steps = migrate_steps(self._sql, self.table, self._where)
                await self._drive_async(steps, transaction=True, setup=False)
                self._ready = True

    def migrate_sync(self) -> None:
        """Apply pending migrations now (otherwise they run on first use, unless the
        store was made with ``migrate=False``)."""
        self._migrate_sync(force=True)

    async def migrate(self) -> None:
        await self._migrate_async(force=True)

    # -- operations (each written once) ----------------------------------------------------
    def _get(self, key: str) -> Steps[SessionRecord | None]:
        row = yield Call(self._sql.get, (key,), "one")
        return _sound(row)

    def _create(self, record: SessionRecord) -> Steps[None]:
        data = json.dumps(record.data, separators=(",", ":"), ensure_ascii=False)
        if "\\u0000" in data:
            for k, v in record.data.items():
                check_json(k, json.dumps(v))
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
        yield Call(self._sql.insert, params, "nothing")

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
        if patch.ops or patch.max_bytes is not None:
            return (yield from self._update_delta(key, new_key, patch, names))
        if not patch.touches_data and not names and new_key is None:
            row = yield Call(self._sql.handle_of, (key,), "one")
            return row is not None and patch.fits(row[0])
        params: list[Any] = []
        if new_key is not None:
            params.append(new_key)
        if patch.touches_data:
            for k, v in patch.set_json.items():
                check_json(k, v)
            params.append([k for k in patch.removed if "\x00" not in k])
            params.append(
                "{"
                + ",".join(
                    f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in patch.set_json.items()
                )
                + "}"
            )
        params.extend(field_value(name, patch.fields[name]) for name in names)
        params.append(key)
        if guard is not None:
            params.append(guard)
        query = self._sql.update(new_key is not None, patch.touches_data, names, guard is not None)
        count = yield Call(query, params, "rowcount")
        return bool(count == 1)

    def _update_delta(
        self, key: str, new_key: str | None, patch: Patch, names: tuple[str, ...]
    ) -> Steps[bool]:
        """A delta with atomic operations or a size limit (``delta``): one UPDATE that
        applies it whole or not at all; when that changes nothing although the record is
        there, the patch worked out in Python, which names the refusal or is written with
        a compare-and-set on the data it read (a few times, if other writers win)."""
        for k, v in patch.set_json.items():
            check_json(k, v)
        for kind, k, _, text in patch.ops:
            check_json(k, text.replace("\x00", "") if kind == SWAP else text)
        guard = patch.expect_handle
        rename = new_key is not None
        head: list[Any] = [new_key] if rename else []
        tail: list[Any] = [field_value(name, patch.fields[name]) for name in names]
        tail.append(key)
        if guard is not None:
            tail.append(guard)
        shape = delta.op_shape(patch.ops)
        if shape is not None:
            limited = patch.max_bytes is not None
            shape_key = (shape, names, rename, guard is not None, limited)
            query = self._delta_sql.get(shape_key)
            if query is None:
                query = delta.delta_sql(
                    self._sql.table, shape, names, rename, guard is not None, limited
                )
                if len(self._delta_sql) < 4096:
                    self._delta_sql[shape_key] = query
            removed = [k for k in patch.removed if "\x00" not in k]
            values = [*head, removed, delta.set_object(patch)]
            values += delta.op_values(patch.ops)
            values += tail
            if limited:
                values.append(patch.max_bytes)
            count = yield Call(query, delta.named(values), "rowcount")
            if count == 1:
                return True
        whole = delta.whole_sql(self._sql.table, names, rename, guard is not None)
        for _ in range(8):
            row = yield Call(self._sql.get_data, (key,), "one")
            if row is None or not patch.fits(row[1]):
                return False
            data = patch.new_data(row[0])  # raises the refusal (a clash, SessionTooLarge)
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            read = json.dumps(row[0], separators=(",", ":"), ensure_ascii=False)
            count = yield Call(whole, [*head, text, *tail, read], "rowcount")
            if count == 1:
                return True
        raise StoreUnavailable(f"PostgreSQL store {self._where}: too many concurrent writers")

    def _delete(self, key: str) -> Steps[bool]:
        count = yield Call(self._sql.delete, (key,), "rowcount")
        return bool(count == 1)

    def _get_by_handle(self, handle: str) -> Steps[SessionRecord | None]:
        row = yield Call(self._sql.get_by_handle, (handle,), "one")
        return _sound(row)

    def _scan(self, cursor: str, count: int) -> Steps[tuple[list[SessionRecord], str | None]]:
        rows = yield Call(self._sql.scan, (cursor, count), "all")
        records = [r for r in map(_sound, rows) if r is not None]
        return records, (str(rows[-1][0]) if len(rows) == count else None)

    def scan_sync(self, cursor: str, count: int) -> tuple[list[SessionRecord], str | None]:
        """In the order of the storage keys: the cursor is the last key returned."""
        return self._drive_sync(self._scan(cursor, count))

    def _list_user(self, user_id: str, now: float) -> Steps[list[SessionRecord]]:
        rows = yield Call(self._sql.list_user, (user_id, now), "all")
        return [r for r in map(_sound, rows) if r is not None]

    def _delete_handle(self, handle: str) -> Steps[SessionRecord | None]:
        row = yield Call(self._sql.delete_handle, (handle,), "one")
        return _sound(row)

    def _delete_user(self, user_id: str, except_handle: str | None) -> Steps[int]:
        count = yield Call(self._sql.delete_user, (user_id, except_handle), "rowcount")
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
            deleted = yield Call(self._sql.purge, (now, batch_size), "rowcount")
            total += int(deleted)
            if deleted < batch_size:
                return total

    def _acquire_lock(self, key: str, owner: str, now: float, lease: float) -> Steps[bool]:
        """One autocommit statement: the row is the lock, so no pooled connection (and no
        session-level advisory lock, which would pin one) is held while the request
        runs; the primary key makes two takers of a free lock one winner. A row is deleted
        when its holder frees it; one left by a crashed holder is taken over at the key's
        next lock (a purge leaves the locks table alone: a store made with
        ``migrate=False`` may not have it yet, and must purge all the same)."""
        count = yield Call(self._sql.acquire_lock, (key, owner, now + lease, now), "rowcount")
        return bool(count == 1)

    def _release_lock(self, key: str, owner: str) -> Steps[bool]:
        count = yield Call(self._sql.release_lock, (key, owner), "rowcount")
        return bool(count == 1)

    def _count(self, now: float) -> Steps[int]:
        row = yield Call(self._sql.count, (now,), "one")
        return int(row[0])

    def _stats(self, now: float, top: int, soon: float) -> Steps[dict[str, Any]]:
        active, expiring = yield Call(self._sql.count_soon, (now + soon, now), "one")
        users = yield Call(self._sql.top_users, (now, top), "all")
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
        self._pools.close_sync()

    async def close(self) -> None:
        await self._pools.close()


def _check_settings(table: str, min_size: int, max_size: int, **timeouts: float) -> None:
    """Refuse settings that would fail later, or never bound a wait."""
    parts = table.split(".")
    if not 1 <= len(parts) <= 2 or not all(IDENTIFIER.fullmatch(p) for p in parts):
        raise ValueError(f"invalid table name {table!r}: use name or schema.name")
    if not 1 <= min_size <= max_size:
        raise ValueError(f"pool sizes must satisfy 1 <= min <= max, got {min_size}, {max_size}")
    for name in ("pool_timeout", "connect_timeout", "reconnect_timeout"):
        if timeouts[name] <= 0:
            raise ValueError(f"{name} must be positive, got {timeouts[name]!r}")
    if timeouts["statement_timeout"] < 0:
        raise ValueError(f"statement_timeout must be >= 0, got {timeouts['statement_timeout']!r}")
