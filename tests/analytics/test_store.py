"""The analytics store on SQLite and PostgreSQL: the personal-data contract (export and
erase by user, the visit before the login included), retention in batches, migrations."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from pathlib import Path

import pytest

from coatcheck.analytics.holder import PageViews
from coatcheck.analytics.postgres_store import VERSION_TABLE, PostgresAnalytics
from coatcheck.analytics.rows import EVENT, LIFECYCLE, PAGE, Hit
from coatcheck.analytics.setup import open_store
from coatcheck.analytics.sqlite_store import SQLiteAnalytics
from coatcheck.analytics.store import AnalyticsStore
from coatcheck.errors import ConfigError, StoreUnavailable
from coatcheck.privacy.contract import DECLARED_HOLDERS, PersonalDataHolder
from tests.analytics.conftest import POSTGRES, drop

ROWS = [
    Hit(PAGE, 100.0, "s1", "/", method="GET", status=200),  # before u1 logged in
    Hit(LIFECYCLE, 101.0, "s1", "session.login", user_id="u1"),
    Hit(PAGE, 102.0, "s1", "/account", user_id="u1", method="GET", status=200),
    Hit(EVENT, 103.0, "s1", "checkout.started", user_id="u1", props={"items": 2}),
    Hit(PAGE, 104.0, "s2", "/", user_id="u2", method="GET", status=200),
    Hit(PAGE, 105.0, "s3", "/"),
]


def test_the_store_is_the_declared_page_views_holder(store: AnalyticsStore) -> None:
    assert DECLARED_HOLDERS["page_views"] is PageViews
    holder = PageViews(store)
    assert isinstance(holder, PersonalDataHolder)
    assert holder.name == "page_views"


def test_export_holds_the_users_rows_and_the_visit_before_the_login(store: AnalyticsStore) -> None:
    store.write_batch(ROWS)
    exported = asyncio.run(store.export_user("u1"))
    rows = exported["rows"]
    assert [(r["at"], r["name"]) for r in rows] == [
        (100.0, "/"),
        (101.0, "session.login"),
        (102.0, "/account"),
        (103.0, "checkout.started"),
    ]
    assert rows[3]["props"] == {"items": 2}
    assert "user_id" not in rows[0]  # the export is about u1: no one else's id in it
    assert asyncio.run(store.export_user("nobody")) == {"rows": []}


def test_erase_removes_the_users_rows_and_nothing_else(store: AnalyticsStore) -> None:
    store.write_batch(ROWS)
    assert asyncio.run(store.erase_user("u1")) == 4
    assert [(r["session"], r["at"]) for r in store.rows()] == [("s2", 104.0), ("s3", 105.0)]
    assert asyncio.run(store.erase_user("u1")) == 0


def test_purge_deletes_what_is_older_than_the_cutoff_in_batches(store: AnalyticsStore) -> None:
    store.write_batch(ROWS)
    assert store.purge_before(104.0, batch=3) == 4  # 100..103: a batch of 3, then 1
    assert [r["at"] for r in store.rows()] == [104.0, 105.0]
    assert store.purge_before(0.0) == 0
    with pytest.raises(ValueError, match="batch"):
        store.purge_before(1.0, batch=0)


def test_the_default_retention_is_thirteen_months(store: AnalyticsStore) -> None:
    store.write_batch(ROWS)
    thirteen_months = 13 * 30.44 * 86400  # 13 months of 30.44 days: 34,190,208 s
    assert store.purge(104.0 + thirteen_months) == 4  # 100..103 are older than that
    assert [r["at"] for r in store.rows()] == [104.0, 105.0]


def test_no_column_holds_an_ip_a_user_agent_or_a_query_string(store: AnalyticsStore) -> None:
    store.write_batch(ROWS)
    row = next(iter(store.rows()))
    assert not {"ip", "user_agent", "query", "token", "key"} & set(row)


def test_sqlite_is_in_wal_mode_and_migrates_once(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    SQLiteAnalytics(str(path)).close()
    again = SQLiteAnalytics(str(path))  # current: no migration runs again
    again.write_batch(ROWS[:1])
    again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {
        "coatcheck_analytics_kind_at",
        "coatcheck_analytics_session_at",
        "coatcheck_analytics_visits_started",
        "coatcheck_analytics_visits_session",
    } <= indexes


def test_postgres_migrates_once_and_refuses_a_newer_schema() -> None:
    table = f"cc_analytics_migrate_{secrets.token_hex(4)}"
    first = PostgresAnalytics(POSTGRES, table)
    try:
        PostgresAnalytics(POSTGRES, table).close()  # current already: no DDL again
        with first.session() as q:
            q(f"UPDATE {VERSION_TABLE} SET version = 99 WHERE tbl = ?", (first.table,))
        with pytest.raises(StoreUnavailable, match="newer"):
            PostgresAnalytics(POSTGRES, table)
    finally:
        drop(first)
        first.close()


def test_urls_pick_the_backend_and_refuse_what_they_do_not_know(tmp_path: Path) -> None:
    sqlite = open_store(f"sqlite:///{tmp_path}/x.db?table=my_rows")
    assert isinstance(sqlite, SQLiteAnalytics) and sqlite.table == "my_rows"
    sqlite.close()
    with pytest.raises(ConfigError, match="unknown scheme"):
        open_store("redis://localhost/0")
    with pytest.raises(ValueError, match="identifier"):
        open_store(f"sqlite:///{tmp_path}/x.db?table=a;drop")
