"""A user's sessions and devices, and questions about a token: the manager's management
API, beside the request path of ``manager``.

``SessionManager`` inherits it; it is a class of its own so the request path (load,
commit and their rules) and the management API ("your devices", revocation, purge, the
questions an adapter such as Django's asks) each read in one place. Each method needs only
the capability it names of the store (``stores.base``), and says so with
``MissingCapability`` when the store lacks it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coatcheck.core import events as ev
from coatcheck.core import policy, tokens
from coatcheck.core.config import SessionConfig
from coatcheck.core.events import EventSink, SessionEvent
from coatcheck.core.record import ROTATED_TO_KEY, SessionRecord, UserId, user_key
from coatcheck.core.session import Session
from coatcheck.engine.clientside import ClientSideSessions
from coatcheck.engine.operations import run_async, run_sync
from coatcheck.engine.results import SessionInfo
from coatcheck.stores.base import AnyStore, HandleIndex, Purgeable, Store, UserIndex

_VALID = policy.Verdict.VALID


class UserSessions:
    """The management API of ``SessionManager`` (which sets these attributes)."""

    store: AnyStore
    config: SessionConfig
    clock: Callable[[], float]
    sinks: list[EventSink]
    _client_side: ClientSideSessions | None
    """The client-side procedures, for a ``ClientSide`` store; else None."""
    _records: Store | None
    """The server-side store, or None for a ``ClientSide`` one."""

    # -- events ------------------------------------------------------------------------
    def emit(
        self,
        name: str,
        *,
        handle: str | None = None,
        user_id: str | None = None,
        **detail: Any,
    ) -> None:
        if not self.sinks:
            return
        event = SessionEvent(name, self.clock(), handle, user_id, detail)
        for sink in self.sinks:
            sink(event)

    def login_detail(self, session: Session) -> dict[str, str]:
        """The client of a login as the record keeps it (user agent, truncated IP; nothing
        when ``record_client`` is off): the login event carries it, so a login history
        can say from which device, without more than the session itself keeps."""
        client = session.client if self.config.record_client else None
        if client is None:
            return {}
        found = (("user_agent", client.user_agent), ("ip", client.ip))
        return {name: value for name, value in found if value}

    def _live(self, record: SessionRecord | None) -> bool:
        """Is ``record`` a live session (not a rotation marker) now?"""
        return (
            record is not None
            and ROTATED_TO_KEY not in record.meta
            and policy.check(record, self.clock()) is _VALID
        )

    async def exists(self, token: str | None) -> bool:
        """Does ``token`` name a live session now? A question, not a request: nothing is
        counted against a client, and a rotated-out token is neither followed nor taken
        as stolen (it names no session of its own any more)."""
        if token is None:
            return False
        side = self._client_side
        if side is not None:
            return not (await run_async(side.load(token, None), side.revocations)).is_new
        key = tokens.checked_storage_key(token)
        records = self._records
        return key is not None and records is not None and self._live(await records.get(key))

    async def end(self, token: str) -> bool:
        """End the session ``token`` names, now (a backend's ``delete(key)``, as Django's
        contract has it); True when a record was there. A client-side store files
        nothing under a token, so there is nothing to end: a logout's commit records
        its revocation instead."""
        key = tokens.checked_storage_key(token)
        records = self._records
        if key is None or records is None:
            return False
        return await records.delete(key)

    async def list_user_sessions(self, user_id: UserId) -> list[SessionInfo]:
        """The user's live sessions ("your devices"). ``user_id`` None (an anonymous
        visitor's) raises ``InvalidUserId``: it names no one's devices."""
        users = UserIndex.of(self.store, "list_user_sessions")
        records = await users.list_user(user_key(user_id), self.clock())
        return [SessionInfo.from_record(r) for r in records]

    async def revoke(self, handle: str) -> bool:
        """End the session with this handle (e.g. from a "your devices" page)."""
        record = await HandleIndex.of(self.store, "revoke").delete_handle(handle)
        return self._revoked(record)

    async def revoke_user(self, user_id: UserId, except_handle: str | None = None) -> int:
        """End all of a user's sessions, optionally keeping the current one. ``user_id``
        None raises ``InvalidUserId`` (it would end the sessions of the user "None")."""
        uid = user_key(user_id)
        side = self._client_side
        if side is not None:
            return await run_async(side.revoke_user(uid, except_handle), side.revocations)
        users = UserIndex.of(self.store, "revoke_user")
        count = await users.delete_user(uid, except_handle)
        self.emit(ev.REVOKED, user_id=uid, count=count, kept=except_handle)
        return count

    async def purge_expired(self) -> int:
        """Delete expired records in batches; returns how many."""
        store = Purgeable.of(self.store, "purge_expired")
        return await store.purge_expired(self.clock(), self.config.purge_batch_size)

    async def is_active(self, handle: str) -> bool:
        """Cheap re-check for long-lived connections: is this session still live?"""
        record = await HandleIndex.of(self.store, "is_active").get_by_handle(handle)
        return policy.check(record, self.clock()) is policy.Verdict.VALID

    def exists_sync(self, token: str | None) -> bool:
        if token is None:
            return False
        side = self._client_side
        if side is not None:
            return not run_sync(side.load(token, None), side.revocations).is_new
        key = tokens.checked_storage_key(token)
        records = self._records
        return key is not None and records is not None and self._live(records.get_sync(key))

    def end_sync(self, token: str) -> bool:
        key = tokens.checked_storage_key(token)
        records = self._records
        if key is None or records is None:
            return False
        return records.delete_sync(key)

    def list_user_sessions_sync(self, user_id: UserId) -> list[SessionInfo]:
        users = UserIndex.of(self.store, "list_user_sessions")
        records = users.list_user_sync(user_key(user_id), self.clock())
        return [SessionInfo.from_record(r) for r in records]

    def revoke_sync(self, handle: str) -> bool:
        return self._revoked(HandleIndex.of(self.store, "revoke").delete_handle_sync(handle))

    def revoke_user_sync(self, user_id: UserId, except_handle: str | None = None) -> int:
        uid = user_key(user_id)
        side = self._client_side
        if side is not None:
            return run_sync(side.revoke_user(uid, except_handle), side.revocations)
        count = UserIndex.of(self.store, "revoke_user").delete_user_sync(uid, except_handle)
        self.emit(ev.REVOKED, user_id=uid, count=count, kept=except_handle)
        return count

    def purge_expired_sync(self) -> int:
        store = Purgeable.of(self.store, "purge_expired")
        return store.purge_expired_sync(self.clock(), self.config.purge_batch_size)

    def is_active_sync(self, handle: str) -> bool:
        record = HandleIndex.of(self.store, "is_active").get_by_handle_sync(handle)
        return policy.check(record, self.clock()) is policy.Verdict.VALID

    def _revoked(self, record: SessionRecord | None) -> bool:
        if record is None:
            return False
        self.emit(ev.REVOKED, handle=record.handle, user_id=record.user_id)
        return True
