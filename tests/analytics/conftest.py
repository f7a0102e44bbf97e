"""Fixtures of the analytics tests: an analytics store on SQLite (a file, WAL) and on the
real PostgreSQL server, each in a table of its own, dropped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck.analytics.postgres_store import VERSION_TABLE, PostgresAnalytics
from coatcheck.analytics.sqlite_store import SQLiteAnalytics
from coatcheck.analytics.store import AnalyticsStore

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def drop(store: PostgresAnalytics) -> None:
    """Drop the store's tables and its schema-version row."""
    with store.session() as q:
        for table in (store.table, store.visits, store.hourly):
            q(f"DROP TABLE IF EXISTS {table}", ())
        q(f"DELETE FROM {VERSION_TABLE} WHERE tbl = ?", (store.table,))


def postgres_store() -> Iterator[PostgresAnalytics]:
    store = PostgresAnalytics(POSTGRES, f"cc_analytics_test_{secrets.token_hex(4)}")
    try:
        yield store
    finally:
        drop(store)
        store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnalyticsStore]:
    if request.param == "sqlite":
        sqlite = SQLiteAnalytics(str(tmp_path / "analytics.db"))
        yield sqlite
        sqlite.close()
    else:
        yield from postgres_store()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteAnalytics]:
    store = SQLiteAnalytics(str(tmp_path / "analytics.db"))
    yield store
    store.close()
