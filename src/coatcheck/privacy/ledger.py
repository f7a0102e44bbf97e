"""The consent ledger: proof of consent (GDPR Art. 7(1): the controller "shall be able to
demonstrate" it) that outlives the session it was given in.

One append-only table beside the sessions, in the store's own database (SQLite or
PostgreSQL; for Redis and Memcached deployments an SQL database named by
``COATCHECK_CONSENT_URL``, else the deployment's privacy database). A row per
``session.consent`` event: who (the session's public handle and, once known, the user),
when, under which policy revision, which categories were granted, denied and withdrawn
(Art. 7(3)), the state in force after the change, the method (``accept_all``,
``reject_all``, ``custom``, ``gpc``, ``api``) and the reason (``choice``, ``recalled``,
``login``). Rows are never updated (a trigger refuses it); they are deleted only by
erasure of the person or by retention.

The ledger is an event sink (``manager.sinks``) and the manager's ``consent_recall``: at a
login it answers the user's latest recorded choice, so that choice applies on a new device
(``ConsentLedger.attach``). It holds personal data, so it implements the personal-data
contract (``export_user``, ``erase_user``) under the name ``consent``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from coatcheck.core import events as ev
from coatcheck.core.consent import NECESSARY, ConsentState
from coatcheck.core.events import SessionEvent
from coatcheck.engine.manager import SessionManager
from coatcheck.errors import ConfigError, StoreUnavailable
from coatcheck.privacy.contract import json_time, personal_data_holder
from coatcheck.privacy.database import PostgresDatabase, SQLiteDatabase

if TYPE_CHECKING:
    from coatcheck.privacy.registry import Deployment

__all__ = ["CONSENT_URL_VARIABLE", "TABLE", "ConsentLedger"]

TABLE = "coatcheck_consent_ledger"
CONSENT_URL_VARIABLE = "COATCHECK_CONSENT_URL"
"""Where the ledger lives when the sessions are in Redis or Memcached (an SQL URL)."""

_COLUMNS = (
    "recorded_at",
    "consent_at",
    "handle",
    "user_id",
    "revision",
    "method",
    "reason",
    "granted",
    "denied",
    "withdrawn",
    "allowed",
    "refused",
)
_LISTS = ("granted", "denied", "withdrawn", "allowed", "refused")
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _sqlite_schema(table: str) -> str:
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recorded_at REAL NOT NULL,
        consent_at REAL NOT NULL,
        handle TEXT,
        user_id TEXT,
        revision INTEGER NOT NULL,
        method TEXT NOT NULL,
        reason TEXT NOT NULL,
        granted TEXT NOT NULL,
        denied TEXT NOT NULL,
        withdrawn TEXT NOT NULL,
        allowed TEXT NOT NULL,
        refused TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS {table}_user ON {table} (user_id) WHERE user_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS {table}_handle ON {table} (handle);
    CREATE TRIGGER IF NOT EXISTS {table}_append_only BEFORE UPDATE ON {table}
    BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;
    """


def _postgres_schema(table: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {table} (
            id BIGSERIAL PRIMARY KEY,
            recorded_at DOUBLE PRECISION NOT NULL,
            consent_at DOUBLE PRECISION NOT NULL,
            handle TEXT,
            user_id TEXT,
            revision INTEGER NOT NULL,
            method TEXT NOT NULL,
            reason TEXT NOT NULL,
            granted TEXT NOT NULL,
            denied TEXT NOT NULL,
            withdrawn TEXT NOT NULL,
            allowed TEXT NOT NULL,
            refused TEXT NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {table}_user ON {table} (user_id) WHERE user_id IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {table}_handle ON {table} (handle)",
        f"""CREATE OR REPLACE FUNCTION {table}_refuse_update() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'the consent ledger is append-only'; END;
            $$ LANGUAGE plpgsql""",
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_refuse_update()""",
    ]


class _Backend:
    """One SQL database: ``run`` a statement with parameters, answer the rows."""

    placeholder = "?"

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError


class _SQLite(_Backend):
    def __init__(self, path: str, table: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._memory: sqlite3.Connection | None = None
        with self._connection() as conn:
            if path != ":memory:":
                # WAL, as the store and the privacy database run it: a file shared with
                # them never sees a writer refused while another holds a rollback lock.
                conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_sqlite_schema(table))

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self.path == ":memory:":  # one connection, or every statement sees a new database
            with self._lock:
                if self._memory is None:
                    self._memory = sqlite3.connect(":memory:", check_same_thread=False)
                    self._memory.isolation_level = None
                yield self._memory
            return
        with closing(sqlite3.connect(self.path, timeout=5.0, isolation_level=None)) as conn:
            conn.execute("PRAGMA busy_timeout = 5000")
            # An erased person's rows are zeroed, not left in free pages (Art. 17, 32).
            conn.execute("PRAGMA secure_delete = ON")
            yield conn

    def scrub(self) -> None:
        """Copy the WAL (if the file has one) into the file and truncate it, so that no
        page of either still holds a deleted row; StoreUnavailable when a reader held it."""
        if self.path == ":memory:":
            return
        with self._connection() as conn:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise StoreUnavailable(
                f"consent ledger {self.path!r}: the WAL checkpoint could not complete "
                "(another connection was reading); run the erasure again"
            )

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._connection() as conn:
                cursor = conn.execute(sql, params)
                if sql.startswith("DELETE"):
                    return [(cursor.rowcount,)]
                return cursor.fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"consent ledger {self.path!r}: {exc}") from exc


class _Postgres(_Backend):
    placeholder = "%s"

    def __init__(self, conninfo: str, table: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self.conninfo = conninfo
        with self._connect() as conn:
            for statement in _postgres_schema(table):
                conn.execute(statement)

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.conninfo, autocommit=True)
        except self._psycopg.OperationalError as exc:
            raise StoreUnavailable(f"consent ledger (PostgreSQL): {exc}") from exc

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connect() as conn:
            cursor = conn.execute(sql, params)
            if sql.startswith("DELETE"):
                return [(cursor.rowcount,)]
            return list(cursor.fetchall()) if cursor.description is not None else []


@personal_data_holder
class ConsentLedger:
    """The append-only record of every consent change, in an SQL database.

    ``ConsentLedger("sqlite:///app.db")``, ``ConsentLedger("postgresql://...")``, or
    ``ConsentLedger.beside(store)`` for the sessions' own database.
    """

    name = "consent"
    retention = ("consent",)

    @classmethod
    def from_deployment(cls, deployment: Deployment) -> ConsentLedger | None:
        """The ledger beside a deployment's store (or at ``COATCHECK_CONSENT_URL``), else
        in its privacy database (``COATCHECK_PRIVACY_DB``); None on a deployment with no
        SQL database for it (then no consent is recorded).

        Its table takes the prefix of the deployment's privacy tables
        (``coatcheck_consent_ledger`` by default), so two stores in one PostgreSQL
        database keep two ledgers, as they keep two activity logs: an erasure in one
        never deletes the other's proof of consent."""
        database = deployment.database
        table = f"{database.prefix}consent_ledger" if database is not None else TABLE
        try:
            return cls.beside(deployment.store, table=table)
        except ConfigError:
            pass
        # A Redis or Memcached store: the privacy database the deployment set, rather
        # than recording no proof of consent at all.
        if isinstance(database, SQLiteDatabase):
            return cls(f"sqlite:///{database.path}", table=table)
        if isinstance(database, PostgresDatabase):
            ledger = cls.__new__(cls)
            ledger.table = table
            ledger._db = _Postgres(database.conninfo, table)
            return ledger
        return None

    async def purge_older_than(self, cutoffs: Mapping[str, float], batch: int) -> int:
        """Retention: the rows older than the ``consent`` period, but each user's latest
        (the proof of the choice still in force)."""
        return await asyncio.to_thread(self.purge, cutoffs["consent"], batch_size=batch)

    def __init__(self, url: str, *, table: str = TABLE) -> None:
        if not _TABLE_NAME.fullmatch(table):
            raise ConfigError(f"consent ledger table {table!r}: lower-case letters, digits, _")
        self.table = table
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            path = unquote(parts.path)
            path = path[1:] if path.startswith("/") and not path.startswith("//") else path
            self._db: _Backend = _SQLite(path or ":memory:", table)
        elif parts.scheme in ("postgresql", "postgres"):
            self._db = _Postgres(url, table)
        else:
            raise ConfigError(
                f"consent ledger: {parts.scheme or url!r} is not an SQL URL "
                "(sqlite:///path.db or postgresql://...)"
            )

    @classmethod
    def beside(
        cls,
        store: object,
        url: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        table: str = TABLE,
    ) -> ConsentLedger:
        """The ledger in ``store``'s own database (SQLite: the same file; PostgreSQL: the
        same database), or at ``url`` / ``COATCHECK_CONSENT_URL`` when given, which a Redis
        or Memcached deployment must give (ConfigError otherwise)."""
        env = os.environ if environ is None else environ
        url = url or env.get(CONSENT_URL_VARIABLE) or None
        if url is not None:
            return cls(url, table=table)
        inner = getattr(store, "inner", store)  # (the service's timed store wraps it)
        path = getattr(inner, "path", None)
        if type(inner).__name__ == "SQLiteStore" and isinstance(path, str):
            return cls(f"sqlite:///{path}", table=table)
        conninfo = getattr(inner, "conninfo", None)
        if type(inner).__name__ == "PostgresStore" and isinstance(conninfo, str):
            ledger = cls.__new__(cls)
            ledger.table = table
            ledger._db = _Postgres(conninfo, table)
            return ledger
        raise ConfigError(
            f"the consent ledger needs an SQL database: {type(inner).__name__} holds none; "
            f"set {CONSENT_URL_VARIABLE} (sqlite:///path.db or postgresql://...)"
        )

    def attach(self, manager: SessionManager) -> SessionManager:
        """Write ``manager``'s consent events here, and recall a user's choice at login."""
        if self not in manager.sinks:
            manager.sinks.append(self)
        manager.consent_recall = self
        return manager

    # -- the sink ------------------------------------------------------------------------
    def __call__(self, event: SessionEvent) -> None:
        if event.name == ev.CONSENT:
            self.record(event)

    def record(self, event: SessionEvent) -> None:
        """Append the row of one ``session.consent`` event."""
        detail = event.detail
        values = [
            event.at,
            float(detail.get("consent_at", event.at)),
            event.handle,
            event.user_id,
            int(detail["revision"]),
            str(detail["method"]),
            str(detail.get("reason", "choice")),
            *(json.dumps(sorted(detail.get(name, ()))) for name in _LISTS),
        ]
        marks = ", ".join([self._db.placeholder] * len(values))
        self._db.run(f"INSERT INTO {self.table} ({', '.join(_COLUMNS)}) VALUES ({marks})", values)

    # -- reading ---------------------------------------------------------------------------
    def rows(
        self, *, user_id: str | None = None, handle: str | None = None
    ) -> list[dict[str, Any]]:
        """The rows of a user (with the rows of their sessions from before they logged in),
        of a session handle, or every row; oldest first."""
        where, params = self._whose(user_id, handle)
        sql = f"SELECT id, {', '.join(_COLUMNS)} FROM {self.table}{where} ORDER BY id"
        return [_row(r) for r in self._db.run(sql, params)]

    def latest_consent(self, user_id: str) -> ConsentState | None:
        """The state the user's latest recorded choice left in force (None: none)."""
        p = self._db.placeholder
        sql = (
            f"SELECT consent_at, revision, method, allowed, refused FROM {self.table} "
            f"WHERE user_id = {p} ORDER BY consent_at DESC, id DESC LIMIT 1"
        )
        found = self._db.run(sql, [user_id])
        if not found:
            return None
        at, revision, method, allowed, refused = found[0]
        return ConsentState(
            frozenset(json.loads(allowed)) | {NECESSARY},
            frozenset(json.loads(refused)),
            int(revision),
            float(at),
            str(method),
        )

    async def latest_consent_async(self, user_id: str) -> ConsentState | None:
        return await asyncio.to_thread(self.latest_consent, user_id)

    def purge(self, before: float, *, batch_size: int = 1000) -> int:
        """Delete the rows recorded before ``before`` (epoch seconds), except each user's
        latest row (the proof of the choice in force), ``batch_size`` per statement so
        readers are never blocked for long; the number deleted. For retention (proof of
        consent is kept for years, then goes)."""
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        p, total = self._db.placeholder, 0
        latest = f"SELECT MAX(id) FROM {self.table} WHERE user_id IS NOT NULL GROUP BY user_id"
        oldest = (
            f"SELECT id FROM {self.table} WHERE recorded_at < {p} AND id NOT IN ({latest}) "
            f"ORDER BY id LIMIT {p}"
        )
        while True:
            found = self._db.run(
                f"DELETE FROM {self.table} WHERE id IN ({oldest})", [before, batch_size]
            )
            count = int(found[0][0]) if found else 0
            total += count
            if count < batch_size:
                return total

    # -- the personal-data contract ----------------------------------------------------------
    def export_user_sync(self, user_id: str) -> dict[str, Any]:
        """The user's rows with their times as every holder exports them (ISO 8601, UTC)."""
        rows = self.rows(user_id=user_id)
        for row in rows:
            row["recorded_at"] = json_time(row["recorded_at"])
            row["consent_at"] = json_time(row["consent_at"])
        return {"rows": rows}

    def erase_user_sync(self, user_id: str) -> int:
        # The user's handles first, then one DELETE: a DELETE whose subquery reads the
        # table it deletes from may see its own deletions (SQLite's OR optimisation does).
        p = self._db.placeholder
        mine = f"SELECT DISTINCT handle FROM {self.table} WHERE user_id = {p}"
        handles = [h for (h,) in self._db.run(mine, [user_id]) if h is not None]
        where = f" WHERE user_id = {p}"
        if handles:
            where += f" OR handle IN ({', '.join([p] * len(handles))})"
        found = self._db.run(f"DELETE FROM {self.table}{where}", [user_id, *handles])
        return int(found[0][0]) if found else 0

    async def export_user(self, user_id: str) -> Mapping[str, Any]:
        """Every ledger row about ``user_id`` (and their sessions before they logged in)."""
        return await asyncio.to_thread(self.export_user_sync, user_id)

    async def erase_user(self, user_id: str) -> int:
        """Delete every ledger row about ``user_id``; the number of rows removed."""
        return await asyncio.to_thread(self.erase_user_sync, user_id)

    async def scrub(self) -> None:
        """After an erasure, on SQLite: no copy of the deleted rows left in the WAL
        (``Scrubbing``; PostgreSQL's copies go at the operator's ``VACUUM (FULL)``)."""
        if isinstance(self._db, _SQLite):
            await asyncio.to_thread(self._db.scrub)

    def _whose(self, user_id: str | None, handle: str | None) -> tuple[str, list[Any]]:
        p = self._db.placeholder
        if user_id is not None:
            mine = f"SELECT handle FROM {self.table} WHERE user_id = {p} AND handle IS NOT NULL"
            return f" WHERE user_id = {p} OR handle IN ({mine})", [user_id, user_id]
        if handle is not None:
            return f" WHERE handle = {p}", [handle]
        return "", []


def _row(row: Sequence[Any]) -> dict[str, Any]:
    values = dict(zip(("id", *_COLUMNS), row, strict=True))
    for name in _LISTS:
        values[name] = json.loads(values[name])
    return values
