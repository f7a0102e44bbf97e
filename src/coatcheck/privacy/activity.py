"""The activity log: a user's login history and security events, kept in SQL so that a user
(and the operator) can see what happened to their account (GDPR Art. 32: the means to
detect an incident), exported, erased and purged through the personal-data contract.

It is an event sink of the engine (``SessionManager(events=[log.sink])``). Events name a
session by its public handle, never by token; of their detail only the fields below are
kept, and the client only as the session record keeps it (the truncated IP, the user agent
as reduced for the record). Events that name no user (a rejected unknown token) are not
about anyone and are not kept. Sinks run inline, so the sink only queues: one writer
thread per log writes the queue in batches, and ``flush`` waits for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from coatcheck.core import events as ev
from coatcheck.core.events import SessionEvent
from coatcheck.core.record import user_key
from coatcheck.privacy.contract import json_time, personal_data_holder
from coatcheck.privacy.database import Cursor, Database

if TYPE_CHECKING:
    from coatcheck.privacy.registry import Deployment

logger = logging.getLogger("coatcheck.privacy")

SESSION: Final = "session"
SECURITY: Final = "security"
KINDS: Final[Mapping[str, str]] = {
    ev.LOGIN: SESSION,
    ev.LOGOUT: SESSION,
    ev.EXPIRED: SESSION,
    ev.REVOKED: SECURITY,
    ev.THEFT_SUSPECTED: SECURITY,
    ev.CLIENT_CHANGED: SECURITY,
    ev.LIMIT_REACHED: SECURITY,
}
"""The events kept, and their kind: the login history (``session``) or a security event."""

PERIODS: Final[Mapping[str, str]] = {SESSION: "ended_sessions", SECURITY: "security_events"}
"""The retention period of each kind (``RetentionPeriods``)."""

KEPT_DETAIL: Final = ("reason", "changed", "action", "count", "active", "user_agent", "ip")
"""Detail fields kept; any other (a handle kept, an internal time) is dropped."""

MAX_PENDING: Final = 10_000
"""Events queued at most while the database is slow; past it the oldest are dropped."""

Row = tuple[str, float, str, str, str | None, str]


def _row(event: SessionEvent) -> Row | None:
    kind = KINDS.get(event.name)
    if kind is None or event.user_id is None:
        return None
    detail = {k: event.detail[k] for k in KEPT_DETAIL if event.detail.get(k) is not None}
    text = json.dumps(detail, separators=(",", ":"), ensure_ascii=False, default=str)
    return (event.user_id, event.at, kind, event.name, event.handle, text)


def _deleting(sql: str, params: Sequence[Any]) -> Callable[[Cursor], int]:
    def delete(cur: Cursor) -> int:
        cur.execute(sql, params)
        return cur.rowcount

    return delete


class _Writer:
    """A thread that writes queued rows in batches; ``flush`` waits until all are written."""

    def __init__(self, write: Callable[[list[Row]], None]) -> None:
        self._write = write
        self._pending: list[Row] = []
        self._queued = 0
        self._done = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def put(self, row: Row) -> None:
        with self._cond:
            if len(self._pending) >= MAX_PENDING:
                self._pending.pop(0)
                self._done += 1
                logger.warning("activity log: queue full, oldest event dropped")
            self._pending.append(row)
            self._queued += 1
            self._running()
            self._cond.notify_all()

    def _running(self) -> None:
        """Start the writer thread unless it runs (called holding the lock)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name="coatcheck-activity", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    if not self._cond.wait(timeout=30.0) and not self._pending:
                        self._thread = None  # idle: the next event starts another
                        return
                batch, self._pending = self._pending, []
            try:
                self._write(batch)
            except Exception as exc:
                logger.warning("activity log: %d event(s) not written: %s", len(batch), exc)
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()

    def flush(self) -> None:
        with self._cond:
            target = self._queued
            while self._done < target:
                self._running()
                self._cond.wait(timeout=1.0)


@personal_data_holder
class ActivityLog:
    """Login history and security events, in ``database`` (table ``<prefix>activity``).

    ``record`` False keeps the holder (what was written is still exported, erased and
    purged) but its sink writes nothing.
    """

    name = "activity"
    retention: tuple[str, ...] = tuple(PERIODS.values())

    def __init__(self, database: Database, *, record: bool = True) -> None:
        self.database = database
        self.record = record
        self.table = database.table("activity")
        self._writer = _Writer(self._insert)

    @classmethod
    def from_deployment(cls, deployment: Deployment) -> ActivityLog | None:
        """The log of a deployment with a SQL database; None without one."""
        if deployment.database is None:
            return None
        return cls(deployment.database, record=deployment.settings.activity_log)

    @property
    def event_sink(self) -> Callable[[SessionEvent], None] | None:
        """The sink to give the manager, or None when nothing is recorded."""
        return self.sink if self.record else None

    def sink(self, event: SessionEvent) -> None:
        """An ``EventSink``: queue the event if it is kept."""
        row = _row(event)
        if row is not None:
            self._writer.put(row)

    def flush(self) -> None:
        """Wait until every queued event is written."""
        self._writer.flush()

    # -- schema ------------------------------------------------------------------------
    def _ensure(self) -> None:
        t = self.table
        if self.database.dialect == "postgresql":
            id_column = "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
            time_type = "double precision"
        else:
            id_column, time_type = "id INTEGER PRIMARY KEY", "REAL"
        self.database.ensure(
            "activity",
            [
                f"CREATE TABLE IF NOT EXISTS {t} ({id_column}, user_id TEXT NOT NULL, "
                f"at {time_type} NOT NULL, kind TEXT NOT NULL, event TEXT NOT NULL, "
                "handle TEXT, detail TEXT NOT NULL)",
                f"CREATE INDEX IF NOT EXISTS {t}_user ON {t} (user_id)",
                f"CREATE INDEX IF NOT EXISTS {t}_kind_at ON {t} (kind, at)",
            ],
        )

    def _insert(self, rows: list[Row]) -> None:
        self._ensure()
        sql = (
            f"INSERT INTO {self.table} (user_id, at, kind, event, handle, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)"
        )

        def write(cur: Cursor) -> None:
            for row in rows:
                cur.execute(sql, row)

        self.database.run(write)

    # -- the contract ------------------------------------------------------------------
    def events_of(self, user_id: str) -> list[dict[str, Any]]:
        """The user's events, oldest first, as exported."""
        self.flush()
        self._ensure()

        def read(cur: Cursor) -> Sequence[Any]:
            cur.execute(
                f"SELECT at, kind, event, handle, detail FROM {self.table} "
                "WHERE user_id = ? ORDER BY at, id",
                (user_id,),
            )
            return cur.fetchall()

        return [
            {"at": json_time(at), "kind": kind, "event": name, "handle": handle, **json.loads(d)}
            for at, kind, name, handle, d in self.database.run(read)
        ]

    async def export_user(self, user_id: str) -> Mapping[str, Any]:
        uid = user_key(user_id)
        return {"events": await asyncio.to_thread(self.events_of, uid)}

    def erase_user_sync(self, user_id: str) -> int:
        uid = user_key(user_id)
        self.flush()
        self._ensure()

        return self.database.run(_deleting(f"DELETE FROM {self.table} WHERE user_id = ?", (uid,)))

    async def erase_user(self, user_id: str) -> int:
        return await asyncio.to_thread(self.erase_user_sync, user_id)

    def purge_older_than_sync(self, cutoffs: Mapping[str, float], batch: int) -> int:
        self.flush()
        self._ensure()
        sql = (
            f"DELETE FROM {self.table} WHERE id IN "
            f"(SELECT id FROM {self.table} WHERE kind = ? AND at < ? LIMIT ?)"
        )
        total = 0
        for kind, period in PERIODS.items():
            cutoff = cutoffs[period]
            while True:  # one short transaction per batch
                deleted = self.database.run(_deleting(sql, (kind, cutoff, batch)))
                total += deleted
                if deleted < batch:
                    break
        return total

    async def purge_older_than(self, cutoffs: Mapping[str, float], batch: int) -> int:
        return await asyncio.to_thread(self.purge_older_than_sync, cutoffs, batch)

    async def scrub(self) -> None:
        await asyncio.to_thread(self.database.scrub)
