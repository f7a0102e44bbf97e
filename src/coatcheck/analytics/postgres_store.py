"""The analytics store on PostgreSQL, for many nodes writing one table.

Migrated as the session store is (``stores/postgres/migrations``): inside one transaction,
the common case (already current) reads one version row and runs no DDL; otherwise a
transaction-scoped advisory lock serializes the nodes and the version is read again under
it, so each migration runs exactly once. A schema newer than this code is refused.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from coatcheck.analytics.store import DEFAULT_TABLE, AnalyticsStore, Query
from coatcheck.errors import StoreUnavailable

__all__ = ["PostgresAnalytics"]

VERSION_TABLE = "coatcheck_analytics_schema"
LOCK = int.from_bytes(hashlib.sha256(b"coatcheck.analytics.migrate").digest()[:8], signed=True)

MIGRATIONS: Sequence[Sequence[str]] = (
    (
        """
        CREATE TABLE {t} (
            id bigserial PRIMARY KEY,
            kind text NOT NULL,
            at double precision NOT NULL,
            session text NOT NULL,
            user_id text,
            name text NOT NULL,
            method text,
            status integer,
            duration_ms double precision,
            previous text,
            browser text,
            os text,
            device text,
            reason text,
            props jsonb NOT NULL DEFAULT '{{}}',
            visit bigint
        )
        """,
        """
        CREATE TABLE {t}_visits (
            id bigserial PRIMARY KEY,
            session text NOT NULL,
            user_id text,
            started double precision NOT NULL,
            ended double precision NOT NULL,
            pages integer NOT NULL,
            events integer NOT NULL,
            entry text,
            exit text,
            browser text,
            os text,
            device text
        )
        """,
        """
        CREATE TABLE {t}_hourly (
            hour bigint NOT NULL,
            kind text NOT NULL,
            name text NOT NULL,
            previous text NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (hour, kind, name, previous)
        )
        """,
        "CREATE INDEX {t}_kind_at ON {t} (kind, at) INCLUDE (name, previous, visit)",
        "CREATE INDEX {t}_session_at ON {t} (session, at)",
        "CREATE INDEX {t}_user ON {t} (user_id) WHERE user_id IS NOT NULL",
        # Covering: a report reads the visits of a range from this index alone.
        "CREATE INDEX {t}_visits_started ON {t}_visits (started) INCLUDE (ended, pages, "
        "events, session, user_id, entry, exit, browser, os, device, id)",
        "CREATE INDEX {t}_visits_session ON {t}_visits (session, ended)",
        "CREATE INDEX {t}_visits_user ON {t}_visits (user_id) WHERE user_id IS NOT NULL",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def write_lock(table: str) -> int:
    """The advisory lock every batch of ``table`` takes: writers on many nodes place rows
    in visits one batch at a time, so two requests of one session written at once by two
    nodes never open two visits."""
    digest = hashlib.sha256(f"coatcheck.analytics.write:{table}".encode()).digest()
    return int.from_bytes(digest[:8], signed=True)


class PostgresAnalytics(AnalyticsStore):
    """``dsn`` is a libpq connection string; ``table`` a plain identifier."""

    def __init__(self, dsn: str, table: str = DEFAULT_TABLE, visit_gap: float = 1800.0) -> None:
        if not table.replace("_", "").isalnum() or not table[:1].isalpha():
            raise ValueError(f"analytics table {table!r} is not a plain identifier")
        self.dsn = dsn
        self.table = table
        self.visit_gap = float(visit_gap)
        self._lock = threading.Lock()
        self._db: psycopg.Connection[Any] | None = None
        self._migrate()

    def _connect(self) -> psycopg.Connection[Any]:
        db = self._db
        if db is None or db.closed or db.broken:
            try:
                db = self._db = psycopg.connect(self.dsn, connect_timeout=5)
            except psycopg.Error as exc:
                raise StoreUnavailable(f"analytics store: {exc}") from exc
        return db

    def _migrate(self) -> None:
        with self._connection() as q:
            if self._current(q):
                return
            q("SELECT pg_advisory_xact_lock(?)", (LOCK,))
            q(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (tbl text PRIMARY KEY, version int)", ())
            if self._current(q):
                return
            found = q(f"SELECT version FROM {VERSION_TABLE} WHERE tbl = ?", (self.table,))
            version = int(found[0][0]) if found else 0
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number]:
                    q(statement.format(t=self.table), ())
            q(
                f"INSERT INTO {VERSION_TABLE} (tbl, version) VALUES (?, ?) "
                "ON CONFLICT (tbl) DO UPDATE SET version = excluded.version",
                (self.table, SCHEMA_VERSION),
            )

    def _current(self, q: Query) -> bool:
        exists = q("SELECT to_regclass(?) IS NOT NULL", (VERSION_TABLE,))
        if not exists[0][0]:
            return False
        found = q(f"SELECT version FROM {VERSION_TABLE} WHERE tbl = ?", (self.table,))
        if not found:
            return False
        version = int(found[0][0])
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"analytics table {self.table}: schema version {version} is newer than "
                f"this coatcheck ({SCHEMA_VERSION}); upgrade coatcheck"
            )
        return version == SCHEMA_VERSION

    @contextmanager
    def _connection(self) -> Iterator[Query]:
        with self._lock:
            db = self._connect()

            def query(statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                if not params:  # no placeholders: the text goes as it is (``%`` included)
                    cursor = db.execute(statement.encode())
                else:
                    cursor = db.execute(statement.replace("?", "%s"), tuple(params))
                return cursor.fetchall() if cursor.description is not None else []

            try:
                with db.transaction():
                    yield query
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(f"analytics store: {exc}") from exc

    def _lock_writers(self, q: Query) -> None:
        q("SELECT pg_advisory_xact_lock(?)", (write_lock(self.table),))

    def _insert_many(self, q: Query, statement: str, rows: list[tuple[Any, ...]]) -> None:
        db = self._connect()
        with db.cursor() as cursor:
            cursor.executemany(statement.replace("?", "%s"), rows)

    def temp_table(self, name: str, select: str) -> str:
        return f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {select}"

    def drop_temp(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS pg_temp.{name}"

    def bucket(self, expr: str, size: int) -> str:
        return f"(floor(({expr}) / {size}) * {size})::bigint"

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
