"""The store contract: what every backend must do, in both an async and a sync flavour.

The contract is small on purpose (compare starsessions' three methods): one read to load,
one atomic write per commit. Keys are SHA-256 hex digests of tokens, never tokens. Each
backend answers both paths with its native client; backends whose I/O is local and short
(memory, SQLite) implement the sync methods and inherit async ones that call them inline,
except ``purge_expired``, which may run for minutes and so runs on a worker thread.

Failures of the backend itself (connection lost, timeout, disk full, locked file) must be
raised as ``StoreUnavailable`` so that edges answer 503.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import Generator
from typing import Any, Protocol, TypeVar

from coatcheck.core.record import Patch, SessionRecord

T = TypeVar("T")

_pid = os.getpid()


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


def process_id() -> int:
    """This process's id, kept current by an at-fork hook (``os.getpid()`` is a system
    call each time). Every store that keeps connections records it with them and, when it
    differs, drops what it inherited through ``fork()``: a pre-forking server's worker must
    never talk on its parent's sockets, where a reply read by the wrong process is another
    user's session."""
    return _pid


class Store(ABC):
    """A place that keeps SessionRecords by storage key."""

    # -- sync path ---------------------------------------------------------------------
    @abstractmethod
    def get_sync(self, key: str) -> SessionRecord | None:
        """The record filed under ``key``, or None. Expired records may be returned;
        the policy rejects them."""

    @abstractmethod
    def create_sync(self, record: SessionRecord) -> None:
        """Store a new record (its key and handle are fresh and random)."""

    @abstractmethod
    def apply_sync(self, key: str, patch: Patch) -> bool:
        """Apply ``patch`` atomically to the record under ``key``.

        Only the keys in the patch change, so concurrent patches that touch different keys
        both survive. Returns False, changing nothing, when no such record exists (it was
        revoked or purged): a commit must never resurrect a session.
        """

    @abstractmethod
    def rename_sync(self, old_key: str, new_key: str, patch: Patch) -> bool:
        """Move the record to ``new_key`` and apply ``patch``, atomically.

        Afterwards ``old_key`` finds nothing. Returns False when ``old_key`` is unknown.
        """

    @abstractmethod
    def delete_sync(self, key: str) -> bool:
        """Delete the record under ``key``; True if there was one."""

    @abstractmethod
    def get_by_handle_sync(self, handle: str) -> SessionRecord | None:
        """The record with this public handle, or None."""

    @abstractmethod
    def list_user_sync(self, user_id: str, now: float) -> list[SessionRecord]:
        """The user's records whose deadline is after ``now``, oldest first."""

    @abstractmethod
    def delete_handle_sync(self, handle: str) -> SessionRecord | None:
        """Delete the record with this handle; return it (for events), or None."""

    @abstractmethod
    def delete_user_sync(self, user_id: str, except_handle: str | None = None) -> int:
        """Delete all of a user's records except the one with ``except_handle``."""

    @abstractmethod
    def purge_expired_sync(self, now: float, batch_size: int) -> int:
        """Delete records whose deadline is at or before ``now``, ``batch_size`` at a time
        so that readers are never blocked for long. Returns how many were deleted."""

    def count_sync(self, now: float) -> int:
        """How many live records there are (for stats); backends may approximate."""
        raise NotImplementedError

    def close_sync(self) -> None:  # noqa: B027 (optional hook, no-op by default)
        """Release connections."""

    # -- async path ----------------------------------------------------------------------
    @abstractmethod
    async def get(self, key: str) -> SessionRecord | None: ...

    @abstractmethod
    async def create(self, record: SessionRecord) -> None: ...

    @abstractmethod
    async def apply(self, key: str, patch: Patch) -> bool: ...

    @abstractmethod
    async def rename(self, old_key: str, new_key: str, patch: Patch) -> bool: ...

    @abstractmethod
    async def delete(self, key: str) -> bool: ...

    @abstractmethod
    async def get_by_handle(self, handle: str) -> SessionRecord | None: ...

    @abstractmethod
    async def list_user(self, user_id: str, now: float) -> list[SessionRecord]: ...

    @abstractmethod
    async def delete_handle(self, handle: str) -> SessionRecord | None: ...

    @abstractmethod
    async def delete_user(self, user_id: str, except_handle: str | None = None) -> int: ...

    @abstractmethod
    async def purge_expired(self, now: float, batch_size: int) -> int: ...

    async def count(self, now: float) -> int:
        return self.count_sync(now)

    async def close(self) -> None:
        self.close_sync()


class InlineStore(Store):
    """A store whose operations are local and short: async methods call the sync ones
    inline, without a thread hop (which would cost more than the operation itself).

    The exception is ``purge_expired``: its length grows with the number of expired
    records (minutes for a million SQLite rows), so it runs on a worker thread and the
    event loop keeps serving requests meanwhile. Subclasses must therefore make
    ``purge_expired_sync`` safe to run in another thread while the loop calls the other
    methods, and release whatever they lock between batches.
    """

    async def get(self, key: str) -> SessionRecord | None:
        return self.get_sync(key)

    async def create(self, record: SessionRecord) -> None:
        self.create_sync(record)

    async def apply(self, key: str, patch: Patch) -> bool:
        return self.apply_sync(key, patch)

    async def rename(self, old_key: str, new_key: str, patch: Patch) -> bool:
        return self.rename_sync(old_key, new_key, patch)

    async def delete(self, key: str) -> bool:
        return self.delete_sync(key)

    async def get_by_handle(self, handle: str) -> SessionRecord | None:
        return self.get_by_handle_sync(handle)

    async def list_user(self, user_id: str, now: float) -> list[SessionRecord]:
        return self.list_user_sync(user_id, now)

    async def delete_handle(self, handle: str) -> SessionRecord | None:
        return self.delete_handle_sync(handle)

    async def delete_user(self, user_id: str, except_handle: str | None = None) -> int:
        return self.delete_user_sync(user_id, except_handle)

    async def purge_expired(self, now: float, batch_size: int) -> int:
        """``purge_expired_sync`` on a worker thread (see the class docstring): a long
        purge must not stall the event loop. Cancelling the await does not stop the purge
        already under way; it finishes its batches in the background."""
        return await asyncio.to_thread(self.purge_expired_sync, now, batch_size)


Procedure = Generator[Any, Any, T]
"""A store operation written once as a generator of wire calls (SQL statements, Redis
commands), whose results are sent back in; a sync and an async driver run it."""


class ProcedureStore(Store):
    """A networked store whose operations are written once as procedures and driven twice.

    Subclasses write ``_get``, ``_create``, ``_apply``, ``_rename``, ... as generators of
    their own wire calls and two drivers, ``_drive_sync`` (the sync client) and
    ``_drive_async`` (the async client); every method of the contract is defined here on
    top of them, so the sync and async paths of a backend cannot drift apart.
    """

    # -- drivers -------------------------------------------------------------------------
    @abstractmethod
    def _drive_sync(self, steps: Procedure[T]) -> T: ...

    @abstractmethod
    async def _drive_async(self, steps: Procedure[T]) -> T: ...

    # -- procedures ----------------------------------------------------------------------
    @abstractmethod
    def _get(self, key: str) -> Procedure[SessionRecord | None]: ...

    @abstractmethod
    def _create(self, record: SessionRecord) -> Procedure[None]: ...

    @abstractmethod
    def _apply(self, key: str, patch: Patch) -> Procedure[bool]: ...

    @abstractmethod
    def _rename(self, old_key: str, new_key: str, patch: Patch) -> Procedure[bool]: ...

    @abstractmethod
    def _delete(self, key: str) -> Procedure[bool]: ...

    @abstractmethod
    def _get_by_handle(self, handle: str) -> Procedure[SessionRecord | None]: ...

    @abstractmethod
    def _list_user(self, user_id: str, now: float) -> Procedure[list[SessionRecord]]: ...

    @abstractmethod
    def _delete_handle(self, handle: str) -> Procedure[SessionRecord | None]: ...

    @abstractmethod
    def _delete_user(self, user_id: str, except_handle: str | None) -> Procedure[int]: ...

    @abstractmethod
    def _purge(self, now: float, batch_size: int) -> Procedure[int]: ...

    @abstractmethod
    def _count(self, now: float) -> Procedure[int]: ...

    # -- sync path -----------------------------------------------------------------------
    def get_sync(self, key: str) -> SessionRecord | None:
        return self._drive_sync(self._get(key))

    def create_sync(self, record: SessionRecord) -> None:
        self._drive_sync(self._create(record))

    def apply_sync(self, key: str, patch: Patch) -> bool:
        return self._drive_sync(self._apply(key, patch))

    def rename_sync(self, old_key: str, new_key: str, patch: Patch) -> bool:
        return self._drive_sync(self._rename(old_key, new_key, patch))

    def delete_sync(self, key: str) -> bool:
        return self._drive_sync(self._delete(key))

    def get_by_handle_sync(self, handle: str) -> SessionRecord | None:
        return self._drive_sync(self._get_by_handle(handle))

    def list_user_sync(self, user_id: str, now: float) -> list[SessionRecord]:
        return self._drive_sync(self._list_user(user_id, now))

    def delete_handle_sync(self, handle: str) -> SessionRecord | None:
        return self._drive_sync(self._delete_handle(handle))

    def delete_user_sync(self, user_id: str, except_handle: str | None = None) -> int:
        return self._drive_sync(self._delete_user(user_id, except_handle))

    def purge_expired_sync(self, now: float, batch_size: int) -> int:
        return self._drive_sync(self._purge(now, batch_size))

    def count_sync(self, now: float) -> int:
        return self._drive_sync(self._count(now))

    # -- async path ----------------------------------------------------------------------
    async def get(self, key: str) -> SessionRecord | None:
        return await self._drive_async(self._get(key))

    async def create(self, record: SessionRecord) -> None:
        await self._drive_async(self._create(record))

    async def apply(self, key: str, patch: Patch) -> bool:
        return await self._drive_async(self._apply(key, patch))

    async def rename(self, old_key: str, new_key: str, patch: Patch) -> bool:
        return await self._drive_async(self._rename(old_key, new_key, patch))

    async def delete(self, key: str) -> bool:
        return await self._drive_async(self._delete(key))

    async def get_by_handle(self, handle: str) -> SessionRecord | None:
        return await self._drive_async(self._get_by_handle(handle))

    async def list_user(self, user_id: str, now: float) -> list[SessionRecord]:
        return await self._drive_async(self._list_user(user_id, now))

    async def delete_handle(self, handle: str) -> SessionRecord | None:
        return await self._drive_async(self._delete_handle(handle))

    async def delete_user(self, user_id: str, except_handle: str | None = None) -> int:
        return await self._drive_async(self._delete_user(user_id, except_handle))

    async def purge_expired(self, now: float, batch_size: int) -> int:
        return await self._drive_async(self._purge(now, batch_size))

    async def count(self, now: float) -> int:
        return await self._drive_async(self._count(now))


class ClientSideStore(Protocol):
    """What a store whose sessions travel in the cookie provides. The manager recognises
    one by its ``client_side`` attribute being true."""

    client_side: bool
    revocations: Store | None
    """Where per-user "not before" times and logged-out handles are kept, or None."""

    def seal(self, record: SessionRecord) -> str:
        """The cookie value carrying ``record`` (its ``key`` is ignored)."""
        ...

    def unseal(self, value: str) -> SessionRecord:
        """The record sealed in ``value``; InvalidCookie, never anything else, otherwise."""
        ...
