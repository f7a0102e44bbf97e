"""The analytics store: one table of rows (``rows.Hit``) on SQLite or PostgreSQL, and what
every backend shares: the writes, export and erasure by user (the personal-data contract,
under the name ``page_views``), retention, and the query surface the figures run on.

A backend gives a connection under a lock (``_connection``), its placeholder, and the two
spellings that differ between the engines (a temporary table, a time bucket); the SQL of
the figures (``figures``) is written once for both. Everything here is synchronous: the
writer is a thread, and the service runs a report in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

from coatcheck.analytics.rows import COLUMNS, EVENT, PAGE, Hit

__all__ = ["DEFAULT_RETENTION", "DEFAULT_TABLE", "AnalyticsStore", "Query"]

DEFAULT_TABLE: Final = "coatcheck_analytics"
DEFAULT_RETENTION: Final = 13 * 30.44 * 86400
"""Thirteen months, in seconds: a year of figures plus the month being compared."""

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""Runs one statement (``?`` placeholders) and returns its rows (none for a write)."""


class AnalyticsStore:
    """The contract of an analytics backend. Every backend exports and erases a user
    through the same SQL; ``analytics.holder.PageViews`` is the personal-data holder over
    it."""

    table: str

    visit_gap: float = 30 * 60.0
    """Seconds of inactivity after which a session's next activity opens a new visit."""

    # -- what a backend provides --------------------------------------------------------
    def _connection(self) -> AbstractContextManager[Query]:
        """A query function over one transaction, the backend's lock held."""
        raise NotImplementedError

    def temp_table(self, name: str, select: str) -> str:
        """The statement that fills temporary table ``name`` from ``select``."""
        raise NotImplementedError

    def drop_temp(self, name: str) -> str:
        """The statement that drops temporary table ``name`` if it exists."""
        raise NotImplementedError

    def bucket(self, expr: str, size: int) -> str:
        """SQL for ``expr`` (epoch seconds) rounded down to a multiple of ``size``."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    def session(self) -> AbstractContextManager[Query]:
        """One transaction for a report (its temporary tables live until it ends)."""
        return self._connection()

    @property
    def visits(self) -> str:
        """The visits table, filled as rows are written: one row per visit."""
        return f"{self.table}_visits"

    @property
    def hourly(self) -> str:
        """Counts of page views (by route and previous route) and custom events (by name)
        per hour, kept as rows are written, so a report over full hours reads a few
        thousand counts instead of every row. Counts only: nothing in it names anyone."""
        return f"{self.table}_hourly"

    def _lock_writers(self, q: Query) -> None:
        """Serialize writers of the table across processes (SQLite's ``BEGIN IMMEDIATE``
        does; PostgreSQL takes a transaction-scoped advisory lock)."""

    def write_batch(self, hits: Sequence[Hit]) -> None:
        """Insert ``hits`` in one transaction (the background writer's target), placing
        each page view and custom event in its visit: the session's latest visit when it
        saw activity at most ``visit_gap`` seconds before, else a new one."""
        if not hits:
            return
        columns = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        statement = f"INSERT INTO {self.table} ({columns}) VALUES ({marks})"
        with self._connection() as q:
            self._lock_writers(q)
            placed: dict[str, list[Any]] = {}
            rows = []
            counts: Counter[tuple[int, str, str, str]] = Counter()
            for hit in sorted(hits, key=lambda h: h.at):
                if hit.kind in (PAGE, EVENT):
                    visit, previous = self._place(q, hit, placed)
                    rows.append(hit.values(previous, visit))
                    hour = int(hit.at // 3600) * 3600
                    counts[
                        hour, hit.kind, hit.name, (previous or "") if hit.kind == PAGE else ""
                    ] += 1
                else:
                    rows.append(hit.values(hit.previous, None))
            self._insert_many(q, statement, rows)
            for (hour, kind, name, previous), n in counts.items():
                q(
                    f"INSERT INTO {self.hourly} (hour, kind, name, previous, n) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (hour, kind, name, previous) "
                    f"DO UPDATE SET n = {self.hourly}.n + excluded.n",
                    (hour, kind, name, previous, n),
                )

    def _place(self, q: Query, hit: Hit, placed: dict[str, list[Any]]) -> tuple[int, str | None]:
        """The visit ``hit`` belongs to (updated, or opened) and, for a page view, the
        route before it in that visit. ``placed`` remembers this batch's visits."""
        state = placed.get(hit.session)
        if state is None:
            found = q(
                f"SELECT id, started, ended, exit FROM {self.visits} "
                "WHERE session = ? ORDER BY ended DESC LIMIT 1",
                (hit.session,),
            )
            state = list(found[0]) if found else None
        page = hit.kind == PAGE
        route = hit.name if page else None
        if state is not None and state[1] - self.visit_gap <= hit.at <= state[2] + self.visit_gap:
            visit, started, ended, last = state
            later = hit.at >= ended
            previous = last if page else hit.previous
            state = [
                visit,
                min(started, hit.at),
                max(ended, hit.at),
                route if page and later else last,
            ]
            q(
                f"UPDATE {self.visits} SET started = ?, ended = ?, pages = pages + ?, "
                "events = events + ?, exit = ?, entry = COALESCE(entry, ?), "
                "user_id = COALESCE(?, user_id) WHERE id = ?",
                (state[1], state[2], int(page), int(not page), state[3], route, hit.user_id, visit),
            )
        else:
            found = q(
                f"INSERT INTO {self.visits} (session, user_id, started, ended, pages, events, "
                "entry, exit, browser, os, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (
                    hit.session,
                    hit.user_id,
                    hit.at,
                    hit.at,
                    int(page),
                    int(not page),
                    route,
                    route,
                    hit.browser,
                    hit.os,
                    hit.device,
                ),
            )
            visit = int(found[0][0])
            previous = None if page else hit.previous
            state = [visit, hit.at, hit.at, route]
        placed[hit.session] = state
        return int(state[0]), previous

    def _insert_many(self, q: Query, statement: str, rows: list[tuple[Any, ...]]) -> None:
        for row in rows:
            q(statement, row)

    def _user_rows(self) -> str:
        """Rows about one user: theirs, and every row of a session that was ever theirs
        (the page views before the login belong to the same visit, the same person)."""
        return f"session IN (SELECT session FROM {self.table} WHERE user_id = ?) OR user_id = ?"

    def export_user_sync(self, user_id: str) -> dict[str, Any]:
        names: tuple[str, ...] = ("kind", "at", "session", "name", "method", "status")
        names += ("duration_ms", "previous", "browser", "os", "device", "reason", "props")
        statement = (
            f"SELECT {', '.join(names)} FROM {self.table} WHERE {self._user_rows()} ORDER BY at, id"
        )
        with self._connection() as q:
            rows = q(statement, (user_id, user_id))
        items = []
        for row in rows:
            item = dict(zip(names, row, strict=True))
            props = item["props"]
            item["props"] = json.loads(props) if isinstance(props, str) else props
            items.append(item)
        return {"rows": items}

    def erase_user_sync(self, user_id: str) -> int:
        with self._connection() as q:
            found = q(
                f"SELECT COUNT(*) FROM {self.table} WHERE {self._user_rows()}",
                (user_id, user_id),
            )
            q(
                f"DELETE FROM {self.visits} WHERE session IN "
                f"(SELECT session FROM {self.table} WHERE user_id = ?) OR user_id = ?",
                (user_id, user_id),
            )
            q(f"DELETE FROM {self.table} WHERE {self._user_rows()}", (user_id, user_id))
        return int(found[0][0])

    async def export_user(self, user_id: str) -> Mapping[str, Any]:
        """Every row about ``user_id`` (the personal-data contract)."""
        return await asyncio.to_thread(self.export_user_sync, user_id)

    async def erase_user(self, user_id: str) -> int:
        """Delete every row about ``user_id``; how many went (the personal-data contract)."""
        return await asyncio.to_thread(self.erase_user_sync, user_id)

    def purge_before(self, cutoff: float, batch: int = 10_000) -> int:
        """Delete rows from before ``cutoff`` (epoch seconds), ``batch`` rows per
        transaction so a large purge never holds the table for long; how many went."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        statement = (
            f"DELETE FROM {self.table} WHERE id IN "
            f"(SELECT id FROM {self.table} WHERE at < ? LIMIT ?)"
        )
        total = 0
        while True:
            with self._connection() as q:
                found = q(
                    f"SELECT COUNT(*) FROM (SELECT id FROM {self.table} WHERE at < ? LIMIT ?) x",
                    (cutoff, batch),
                )
                count = int(found[0][0])
                if count:
                    q(statement, (cutoff, batch))
            total += count
            if count < batch:
                break
        with self._connection() as q:
            q(f"DELETE FROM {self.visits} WHERE ended < ?", (cutoff,))
        return total

    def purge(self, now: float, retention: float = DEFAULT_RETENTION, batch: int = 10_000) -> int:
        """Apply the retention: delete what is older than ``retention`` seconds (13 months
        by default) before ``now``."""
        return self.purge_before(now - retention, batch)

    def count(self) -> int:
        with self._connection() as q:
            return int(q(f"SELECT COUNT(*) FROM {self.table}", ())[0][0])

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row, oldest first (tests and small exports)."""
        names = ("id", *COLUMNS)
        with self._connection() as q:
            found = q(f"SELECT {', '.join(names)} FROM {self.table} ORDER BY at, id", ())
        for row in found:
            yield dict(zip(names, row, strict=True))
