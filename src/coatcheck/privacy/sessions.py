"""The user's sessions and devices as a holder of personal data: exported from the store's
user index, erased by revoking them all (the engine's ``revoke_user``), so every token the
user holds opens nothing afterwards.

Export lists every record the store still files under the user, including an ended one a
SQL store keeps until ``coatcheck purge`` (``live`` tells them apart), with the session's
data: the application put it there, coatcheck holds it. Engine metadata (the CSRF secret,
the assurance level) is a credential or internal state, not data about the person, and is
left out. A cookie store keeps each session in its browser: the server holds none to
export, and erasure records the revocation of all of them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from coatcheck.core import policy
from coatcheck.core.record import ROTATED_TO_KEY, SessionRecord, user_key
from coatcheck.engine.manager import SessionManager
from coatcheck.errors import StoreUnavailable
from coatcheck.privacy.contract import json_time, personal_data_holder
from coatcheck.stores.base import AnyStore, ClientSide, Store, UserIndex
from coatcheck.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from coatcheck.privacy.registry import Deployment

EVERYTHING = 0.0
"""The ``now`` a user index is asked at for an export: every record it still files is
live at the epoch's start, so none is left out for having ended."""


def _unwrapped(store: AnyStore) -> AnyStore:
    """The store under wrappers that keep it as ``inner`` (the service's timing)."""
    inner = vars(store).get("inner") if hasattr(store, "__dict__") else None
    while isinstance(inner, (Store, ClientSide)):
        store = inner
        inner = vars(store).get("inner") if hasattr(store, "__dict__") else None
    return store


@personal_data_holder
class SessionsHolder:
    """The sessions ``manager``'s store keeps about a user.

    Give it a manager of its own, without the activity log's sink: the revocation an
    erasure makes is no event to keep about the person being erased.
    """

    name = "sessions"

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    @classmethod
    def from_deployment(cls, deployment: Deployment) -> SessionsHolder:
        return cls(SessionManager(deployment.store, deployment.config, deployment.clock))

    def _view(self, record: SessionRecord, now: float) -> dict[str, Any]:
        return {
            "handle": record.handle,
            "live": policy.check(record, now) is policy.Verdict.VALID,
            "created_at": json_time(record.created_at),
            "last_seen_at": json_time(record.last_seen_at),
            "expires_at": json_time(record.expires_at),
            "authenticated_at": json_time(record.auth_at),
            "remember": record.remember,
            "user_agent": record.user_agent,
            "ip": record.ip,
            "data": record.data,
        }

    async def export_user(self, user_id: str) -> Mapping[str, Any]:
        uid = user_key(user_id)
        store = self.manager.store
        if not isinstance(store, UserIndex):
            return {"sessions": []}
        records = await store.list_user(uid, EVERYTHING)
        now = self.manager.clock()
        views = [self._view(r, now) for r in records if ROTATED_TO_KEY not in r.meta]
        return {"sessions": sorted(views, key=lambda v: (v["created_at"], v["handle"]))}

    async def erase_user(self, user_id: str) -> int:
        return await self.manager.revoke_user(user_key(user_id))

    async def scrub(self) -> None:
        """On SQLite, checkpoint the WAL into the file (whose freed pages the store's
        ``secure_delete`` zeroed) and truncate it."""
        store = _unwrapped(self.manager.store)
        if isinstance(store, SQLiteStore) and store.path not in (":memory:", ""):
            await asyncio.to_thread(_checkpoint, store)


def _checkpoint(store: SQLiteStore) -> None:
    try:
        with store.connection() as conn:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"SQLite store {store.path!r}: {exc}") from exc
    if busy:
        raise StoreUnavailable(
            f"{store.path}: the WAL checkpoint could not complete (another connection was "
            "reading); run the erasure again"
        )
