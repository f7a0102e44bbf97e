"""The store contract: what every backend must do, in both an async and a sync flavour.

The contract is small on purpose (compare starsessions' three methods): one read to load,
one atomic write per commit. Keys are SHA-256 hex digests of tokens, never tokens. Each
backend answers both paths with its native client; backends whose I/O is local and short
(memory, SQLite) implement the sync methods and inherit async ones that call them inline.

Failures of the backend itself (connection lost, timeout, disk full, locked file) must be
raised as ``StoreUnavailable`` so that edges answer 503.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..model import Patch, SessionRecord


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
    inline, without a thread hop (which would cost more than the operation itself)."""

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
        return self.purge_expired_sync(now, batch_size)
