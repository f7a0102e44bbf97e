"""The analytics store on SQLite (the default): one file in WAL mode, so the background
writer and a report never block each other for long; schema versions in
``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from coatcheck.analytics.store import DEFAULT_TABLE, AnalyticsStore, Query

__all__ = ["SQLiteAnalytics"]

MIGRATIONS: Sequence[Sequence[str]] = (
    (
        """
        CREATE TABLE IF NOT EXISTS {t} (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            at REAL NOT NULL,
            session TEXT NOT NULL,
            user_id TEXT,
            name TEXT NOT NULL,
            method TEXT,
            status INTEGER,
            duration_ms REAL,
            previous TEXT,
            browser TEXT,
            os TEXT,
            device TEXT,
            reason TEXT,
            props TEXT NOT NULL DEFAULT '{{}}',
            visit INTEGER
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS {t}_visits (
            id INTEGER PRIMARY KEY,
            session TEXT NOT NULL,
            user_id TEXT,
            started REAL NOT NULL,
            ended REAL NOT NULL,
            pages INTEGER NOT NULL,
            events INTEGER NOT NULL,
            entry TEXT,
            exit TEXT,
            browser TEXT,
            os TEXT,
            device TEXT
        )
        """,
        """
        CREATE TABLE {t}_hourly (
            hour INTEGER NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            previous TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (hour, kind, name, previous)
        )
        """,
        "CREATE INDEX IF NOT EXISTS {t}_kind_at ON {t} (kind, at, name, previous, visit)",
        "CREATE INDEX IF NOT EXISTS {t}_session_at ON {t} (session, at)",
        "CREATE INDEX IF NOT EXISTS {t}_user ON {t} (user_id) WHERE user_id IS NOT NULL",
        # Covering: a report reads the visits of a range from this index alone.
        "CREATE INDEX IF NOT EXISTS {t}_visits_started ON {t}_visits (started, ended, pages, "
        "events, session, user_id, entry, exit, browser, os, device, id)",
        "CREATE INDEX IF NOT EXISTS {t}_visits_session ON {t}_visits (session, ended)",
        "CREATE INDEX IF NOT EXISTS {t}_visits_user ON {t}_visits (user_id) "
        "WHERE user_id IS NOT NULL",
    ),
)
"""Schema migrations in order; ``{t}`` is the table."""


class SQLiteAnalytics(AnalyticsStore):
    """``path`` is a file (or ``:memory:``); ``table`` must be a plain identifier."""

    def __init__(self, path: str, table: str = DEFAULT_TABLE, visit_gap: float = 1800.0) -> None:
        if not table.replace("_", "").isalnum() or not table[:1].isalpha():
            raise ValueError(f"analytics table {table!r} is not a plain identifier")
        self.path = path
        self.table = table
        self.visit_gap = float(visit_gap)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    def _migrate(self) -> None:
        with self._connection() as q:
            version = int(q("PRAGMA user_version", ())[0][0])
            for number in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number]:
                    q(statement.format(t=self.table), ())
            if version < len(MIGRATIONS):
                q(f"PRAGMA user_version = {len(MIGRATIONS)}", ())

    @contextmanager
    def _connection(self) -> Iterator[Query]:
        db = self._db

        def query(statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            return db.execute(statement, tuple(params)).fetchall()

        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield query
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _insert_many(self, q: Query, statement: str, rows: list[tuple[Any, ...]]) -> None:
        self._db.executemany(statement, rows)

    def temp_table(self, name: str, select: str) -> str:
        return f"CREATE TEMP TABLE {name} AS {select}"

    def drop_temp(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS temp.{name}"

    def bucket(self, expr: str, size: int) -> str:
        return f"(CAST(({expr}) / {size} AS INTEGER) * {size})"

    def close(self) -> None:
        with self._lock:
            self._db.close()
