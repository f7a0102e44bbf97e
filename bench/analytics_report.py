"""The analytics report over 1,000,000 page views, on SQLite and on PostgreSQL: how long
``coatcheck.analytics.figures.summary`` takes for a week (target: under 2 s).

The rows are made by SQL in the database (a recursive CTE in SQLite, ``generate_series``
in PostgreSQL), not by a million Python calls: 100,000 sessions over seven days, each
with ten page views a minute apart split into two visits by a 40-minute pause, a login
in every fourth session, a custom event every twentieth page view, 37 routes, three
browsers. ``BENCH_ANALYTICS_ROWS`` changes the number of page views,
``BENCH_ANALYTICS_REPS`` the timed reports (the median is shown), ``BENCH_POSTGRES_URL``
the server (default ``postgresql://postgres@127.0.0.1:5432/test``; the table is a random
one, dropped at the end).
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from coatcheck.analytics.figures import summary
from coatcheck.analytics.postgres_store import VERSION_TABLE, PostgresAnalytics
from coatcheck.analytics.sqlite_store import SQLiteAnalytics
from coatcheck.analytics.store import AnalyticsStore

from .harness import Scenario, Settings, WorkloadResult

BASE = 1_772_409_600.0  # 2026-03-02 00:00 UTC
WEEK = 7 * 86400
TARGET = 2.0

VISIT = "((i / 10) * 2 + CASE WHEN i % 10 >= 5 THEN 1 ELSE 0 END)"
ROWS_SQL = """
SELECT 'page', {base} + (i / 10) * {spacing} + (i % 10) * 60
           + CASE WHEN i % 10 >= 5 THEN 2400 ELSE 0 END,
       's' || (i / 10),
       CASE WHEN (i / 10) % 4 = 0 AND i % 10 >= 2 THEN 'u' || (i / 40) END,
       '/p/' || (i % 37), 'GET', 200, 12.5,
       CASE WHEN i % 5 = 0 THEN NULL ELSE '/p/' || ((i - 1) % 37) END,
       CASE i % 3 WHEN 0 THEN 'Chrome' WHEN 1 THEN 'Firefox' ELSE 'Safari' END,
       CASE i % 3 WHEN 0 THEN 'Windows' WHEN 1 THEN 'Linux' ELSE 'macOS' END,
       CASE WHEN i % 7 = 0 THEN 'mobile' ELSE 'desktop' END, '{{}}', {visit}
FROM {source}
"""
EXTRA_SQL = """
SELECT CASE WHEN i % 20 = 7 THEN 'event' ELSE 'lifecycle' END,
       {base} + (i / 10) * {spacing} + (i % 10) * 60 + 30,
       's' || (i / 10), 'u' || (i / 40),
       CASE WHEN i % 20 = 7 THEN 'cart.added' ELSE 'session.login' END,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{{}}',
       CASE WHEN i % 20 = 7 THEN {visit} END
FROM {source} WHERE i % 20 = 7 OR (i % 40 = 1)
"""
VISITS_SQL = """
INSERT INTO {visits} (id, session, user_id, started, ended, pages, events, entry, exit,
                      browser, os, device)
SELECT visit, MIN(session), MAX(user_id), MIN(at), MAX(at),
       SUM(CASE WHEN kind = 'page' THEN 1 ELSE 0 END),
       SUM(CASE WHEN kind = 'event' THEN 1 ELSE 0 END),
       '/p/' || (((visit / 2) * 10 + (visit % 2) * 5) % 37),
       '/p/' || (((visit / 2) * 10 + (visit % 2) * 5 + 4) % 37),
       MAX(browser), MAX(os), MAX(device)
FROM {table} WHERE visit IS NOT NULL GROUP BY visit
"""
HOURLY_SQL = """
INSERT INTO {hourly} (hour, kind, name, previous, n)
SELECT {hour}, kind, name, CASE WHEN kind = 'page' THEN COALESCE(previous, '') ELSE '' END,
       COUNT(*)
FROM {table} WHERE kind IN ('page', 'event') GROUP BY 1, 2, 3, 4
"""
COLUMNS = (
    "kind, at, session, user_id, name, method, status, duration_ms, previous, browser, os, "
    "device, props, visit"
)


def fill(store: AnalyticsStore, rows: int, sqlite: bool) -> float:
    """Insert ``rows`` page views (their logins and events, and their visits) by SQL, as
    the store's writer would have placed them; seconds taken."""
    spacing = WEEK / max(1, rows // 10)
    if sqlite:
        source = "n"
        prefix = (
            f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1}) "
        )
    else:
        source = f"generate_series(0, {rows - 1}) AS g(i)"
        prefix = ""
    began = time.perf_counter()
    with store.session() as q:
        for select in (ROWS_SQL, EXTRA_SQL):
            body = select.format(base=BASE, spacing=spacing, source=source, visit=VISIT)
            q(f"{prefix}INSERT INTO {store.table} ({COLUMNS}) {body}", ())
        q(VISITS_SQL.format(visits=store.visits, table=store.table), ())
        q(
            HOURLY_SQL.format(
                hourly=store.hourly, table=store.table, hour=store.bucket("at", 3600)
            ),
            (),
        )
    with store.session() as q:
        q("ANALYZE" if sqlite else f"ANALYZE {store.table}", ())
        if not sqlite:
            q(f"ANALYZE {store.visits}", ())
    return time.perf_counter() - began


def time_reports(store: AnalyticsStore, reps: int) -> tuple[list[float], int]:
    samples = []
    visits = 0
    for _ in range(reps):
        began = time.perf_counter()
        doc = summary(store, BASE, BASE + WEEK + 3600)
        samples.append(time.perf_counter() - began)
        visits = doc["visits"]
    return samples, visits


async def run(_: Settings, console: Console) -> list[WorkloadResult]:
    rows = int(os.environ.get("BENCH_ANALYTICS_ROWS", "1000000"))
    reps = int(os.environ.get("BENCH_ANALYTICS_REPS", "3"))
    url = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    table = Table(
        title=f"analytics report over {rows:,} page views (a week), target < {TARGET:g} s",
        title_justify="left",
        title_style="bold",
    )
    for heading in ("store", "fill (SQL)", "report median", "min", "max", "visits", "target"):
        table.add_column(heading, justify="right" if heading != "store" else "left")
    with tempfile.TemporaryDirectory(prefix="coatcheck-analytics-") as tmp:
        stores: list[tuple[str, AnalyticsStore]] = [
            ("SQLite", SQLiteAnalytics(str(Path(tmp) / "analytics.db")))
        ]
        try:
            stores.append(
                ("PostgreSQL", PostgresAnalytics(url, f"bench_analytics_{secrets.token_hex(4)}"))
            )
        except Exception as exc:
            console.print(f"[yellow]skipped PostgreSQL: {exc}[/]")
        for name, store in stores:
            try:
                filled = fill(store, rows, isinstance(store, SQLiteAnalytics))
                samples, visits = time_reports(store, reps)
                median = statistics.median(samples)
                table.add_row(
                    name,
                    f"{filled:.1f} s",
                    f"{median:.2f} s",
                    f"{min(samples):.2f} s",
                    f"{max(samples):.2f} s",
                    f"{visits:,}",
                    "[green]met[/]" if median < TARGET else "[red]missed[/]",
                )
            finally:
                if isinstance(store, PostgresAnalytics):
                    with store.session() as q:
                        for name in (store.table, store.visits, store.hourly):
                            q(f"DROP TABLE IF EXISTS {name}", ())
                        q(f"DELETE FROM {VERSION_TABLE} WHERE tbl = ?", (store.table,))
                store.close()
    console.print(table)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    console.print(f"load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} CPUs")
    return []


SCENARIO = Scenario(
    name="analytics",
    description="coatcheck analytics report over 1,000,000 page views on SQLite and "
    "PostgreSQL (target: under 2 s)",
    packages=("coatcheck", "psycopg"),
    run=run,
)
