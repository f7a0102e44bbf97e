"""The store contract: a small core every server-side store meets, and capabilities a
store declares by inheriting them.

The core (``Store``) is what every request needs: one read to load, one atomic write per
commit (compare starsessions' three methods). Everything else a store may or may not be
able to do is a capability class (``HandleIndex``, ``UserIndex``, ``Purgeable``,
``Countable``, ``Statistics``, ``Lockable``): a store declares one by inheriting it, and
the engine asks ``isinstance(store, UserIndex)`` before it calls a method of it, so no
store method ever answers "not supported". What the engine cannot do because its store
lacks a capability it refuses with one error, ``MissingCapability``, naming the capability
(``Capability.of``). A store whose sessions travel in the cookie (``ClientSide``) keeps no
records at all and meets that contract instead of the core.

Keys are SHA-256 hex digests of tokens, never tokens. Each backend answers both paths with
its native client; backends whose I/O is local and short (memory, SQLite) write the sync
methods and inherit async ones that call them inline (``InlineStore`` and the ``Inline*``
capability mixins), networked ones write procedures driven twice (``ProcedureStore`` and
the ``Procedure*`` mixins).

Failures of the backend itself (connection lost, timeout, disk full, locked file) must be
raised as ``StoreUnavailable`` so that edges answer 503.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import Generator
from typing import Any, Self, TypeVar

from coatcheck.core.record import Patch, SessionRecord
from coatcheck.errors import MissingCapability

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
    """The core contract: what every request needs of a server-side store, and all a new
    backend must write to be usable (five operations, each sync and async).

    A load is one ``get``; a commit is one ``apply`` (a touch or a data write), one
    ``rename`` (login, ``regenerate()``, rotation), one ``create`` (a new session) or one
    ``delete`` (logout). Anything more (finding a session by handle, listing a user's
    sessions, purging, counting) is a capability below, which a store declares by
    inheriting it and the engine asks for by type.
    """

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
        revoked or purged) or when ``patch.expect_handle`` names another record: a commit
        must never resurrect a session.
        """

    @abstractmethod
    def rename_sync(self, old_key: str, new_key: str, patch: Patch) -> bool:
        """Move the record to ``new_key`` and apply ``patch``, atomically.

        Afterwards ``old_key`` finds nothing. Returns False when ``old_key`` is unknown.
        """

    @abstractmethod
    def delete_sync(self, key: str) -> bool:
        """Delete the record under ``key``; True if there was one."""

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

    async def close(self) -> None:
        self.close_sync()


# -- capabilities: declared by inheriting them, asked for with isinstance --------------------
class Capability(ABC):  # noqa: B024 (a base: the abstract methods are its subclasses')
    """What a store may be able to do beyond the core contract; a store declares one by
    inheriting it, and the engine asks for it by type."""

    @classmethod
    def of(cls, store: object, operation: str) -> Self:
        """``store`` as this capability, or the one error that says the engine cannot do
        ``operation`` because ``store``'s type does not declare it."""
        if isinstance(store, cls):
            return store
        hint = ""
        if isinstance(store, ClientSide) and cls is Lockable:
            hint = (
                ": each session travels in its browser's cookie, and the last response "
                "wins; use a server-side store to run a session's requests one at a time"
            )
        elif isinstance(store, ClientSide):
            hint = (
                ": each session lives only in its browser's cookie, and nothing on the server "
                "names it. revoke_user(user_id, except_handle=...) ends all of a user's "
                "sessions (with a revocation store); use a server-side store if users must "
                "see and end their sessions one by one"
            )
        raise MissingCapability(type(store).__name__, cls.__name__, operation, hint)


class HandleIndex(Capability):
    """Records found by their public handle. The engine needs it for ``is_active`` and
    ``revoke(handle)``, and for ``rotation_interval`` (a request that raced a rotation
    follows the session to its new key, and a logout ends it by handle)."""

    @abstractmethod
    def get_by_handle_sync(self, handle: str) -> SessionRecord | None:
        """The record with this public handle, or None."""

    @abstractmethod
    def delete_handle_sync(self, handle: str) -> SessionRecord | None:
        """Delete the record with this handle; return it (for events), or None."""

    @abstractmethod
    async def get_by_handle(self, handle: str) -> SessionRecord | None: ...

    @abstractmethod
    async def delete_handle(self, handle: str) -> SessionRecord | None: ...


class UserIndex(Capability):
    """Records found by user id, through an index that expires with them. The engine
    needs it for ``list_user_sessions`` and ``revoke_user``, and for
    ``max_sessions_per_user``."""

    @abstractmethod
    def list_user_sync(self, user_id: str, now: float) -> list[SessionRecord]:
        """The user's records whose deadline is after ``now``, oldest first."""

    @abstractmethod
    def delete_user_sync(self, user_id: str, except_handle: str | None = None) -> int:
        """Delete all of a user's records except the one with ``except_handle``."""

    @abstractmethod
    async def list_user(self, user_id: str, now: float) -> list[SessionRecord]: ...

    @abstractmethod
    async def delete_user(self, user_id: str, except_handle: str | None = None) -> int: ...


class Purgeable(Capability):
    """Expired records deleted on request (``manager.purge_expired``, ``coatcheck purge``),
    for stores whose records do not vanish at their deadline by themselves."""

    @abstractmethod
    def purge_expired_sync(self, now: float, batch_size: int) -> int:
        """Delete records whose deadline is at or before ``now``, ``batch_size`` at a time
        so that readers are never blocked for long. Returns how many were deleted."""

    @abstractmethod
    async def purge_expired(self, now: float, batch_size: int) -> int: ...


class Countable(Capability):
    """How many live records there are (``coatcheck stats``)."""

    @abstractmethod
    def count_sync(self, now: float) -> int:
        """Records whose deadline is after ``now``; a backend may approximate, and says
        so in its docstring."""

    @abstractmethod
    async def count(self, now: float) -> int: ...


class Statistics(Countable):
    """Figures beyond the count, for ``coatcheck stats`` (a sync command, hence no async
    twin): live sessions, those ending soon, and the users with the most sessions."""

    @abstractmethod
    def stats_sync(self, now: float, *, top: int = 10, soon: float = 300.0) -> dict[str, Any]:
        """``active``, ``expiring_soon`` (within ``soon`` seconds) and ``top_users``, the
        ``top`` users by live sessions as (user id, count) pairs, most first."""


class Lockable(Capability):
    """Per-session locks with a lease (``SessionConfig.lock_sessions``, the route markers of
    every edge): requests of one session then run one at a time, as PHP's and ASP.NET's do.

    ``key`` is the session's storage key (a digest, never the token); the store files the
    lock under a name of its own beside the record. ``owner`` is a random value only the
    holder knows, so a holder whose lease ran out cannot release its successor's lock.
    A lock is a lease: ``lease`` seconds after it was taken it is free again, so a worker
    that crashed while holding one never locks its session for ever. ``now`` is the
    manager's clock; a store that keeps time itself (Redis ``PX``) may go by its own.
    """

    @abstractmethod
    def acquire_lock_sync(self, key: str, owner: str, now: float, lease: float) -> bool:
        """Take the lock of ``key`` for ``owner`` if it is free or its lease ended; one
        attempt, no waiting (the engine waits, with a bounded backoff)."""

    @abstractmethod
    def release_lock_sync(self, key: str, owner: str) -> bool:
        """Free the lock of ``key`` if ``owner`` still holds it; True if it did."""

    @abstractmethod
    async def acquire_lock(self, key: str, owner: str, now: float, lease: float) -> bool: ...

    @abstractmethod
    async def release_lock(self, key: str, owner: str) -> bool: ...


class Scannable(Capability):
    """Every record, in batches: what ``coatcheck rekey`` walks to re-seal stored data under
    the newest data key. Maintenance only (sync, no request needs it), so it is not among
    ``CAPABILITIES``, which the engine's uses and the encrypted wrapper's pass-through
    follow. Memcached cannot enumerate its items and does not declare it."""

    @abstractmethod
    def scan_sync(self, cursor: str, count: int) -> tuple[list[SessionRecord], str | None]:
        """About ``count`` records (as stored: no deadline is checked, damaged ones are
        skipped) from ``cursor`` (``""`` to start) on, and the cursor to go on from, None
        when the walk is done. Resumable: a cursor stays valid across processes. A record
        written during the walk may or may not be in it; none there from start to end is
        missed."""


class ClientSide(Capability):
    """A store whose sessions travel in the cookie itself (``CookieStore``): it keeps no
    records, so it meets not the core contract but this one, and the manager runs its
    client-side procedures (``coatcheck.engine.clientside``) for it."""

    revocations: Store | None
    """Where per-user "not before" times and logged-out handles are kept, or None."""

    @abstractmethod
    def seal(self, record: SessionRecord) -> str:
        """The cookie value carrying ``record`` (its ``key`` is ignored)."""

    @abstractmethod
    def unseal(self, value: str) -> SessionRecord:
        """The record sealed in ``value``; InvalidCookie, never anything else, otherwise."""

    def close_sync(self) -> None:
        """Release connections (of the revocation store, if any)."""

    async def close(self) -> None:
        self.close_sync()


AnyStore = Store | ClientSide
"""What ``SessionManager`` takes: a server-side store, or a client-side one."""

CAPABILITIES: tuple[type[Capability], ...] = (
    HandleIndex,
    UserIndex,
    Purgeable,
    Countable,
    Statistics,
    Lockable,
    ClientSide,
)
"""Every capability a store may declare, beyond the core contract."""


def capabilities(store: object) -> frozenset[type[Capability]]:
    """The capabilities a store (or a store class) declares."""
    kind = store if isinstance(store, type) else type(store)
    return frozenset(c for c in CAPABILITIES if issubclass(kind, c))


# -- two ways to write a store ----------------------------------------------------------------
class InlineStore(Store):
    """A store whose operations are local and short: async methods call the sync ones
    inline, without a thread hop (which would cost more than the operation itself).
    ``InlineHandleIndex``, ``InlineUserIndex``, ``InlinePurgeable`` and ``InlineCountable``
    do the same for the capabilities such a store declares.

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


class InlineHandleIndex(HandleIndex):
    async def get_by_handle(self, handle: str) -> SessionRecord | None:
        return self.get_by_handle_sync(handle)

    async def delete_handle(self, handle: str) -> SessionRecord | None:
        return self.delete_handle_sync(handle)


class InlineUserIndex(UserIndex):
    async def list_user(self, user_id: str, now: float) -> list[SessionRecord]:
        return self.list_user_sync(user_id, now)

    async def delete_user(self, user_id: str, except_handle: str | None = None) -> int:
        return self.delete_user_sync(user_id, except_handle)


class InlinePurgeable(Purgeable):
    async def purge_expired(self, now: float, batch_size: int) -> int:
        """``purge_expired_sync`` on a worker thread (see ``InlineStore``): a long purge
        must not stall the event loop. Cancelling the await does not stop the purge
        already under way; it finishes its batches in the background."""
        return await asyncio.to_thread(self.purge_expired_sync, now, batch_size)


class InlineCountable(Countable):
    async def count(self, now: float) -> int:
        return self.count_sync(now)


class InlineLockable(Lockable):
    async def acquire_lock(self, key: str, owner: str, now: float, lease: float) -> bool:
        return self.acquire_lock_sync(key, owner, now, lease)

    async def release_lock(self, key: str, owner: str) -> bool:
        return self.release_lock_sync(key, owner)


Procedure = Generator[Any, Any, T]
"""A store operation written once as a generator of wire calls (SQL statements, Redis
commands), whose results are sent back in; a sync and an async driver run it."""


class ProcedureStore(Store):
    """A networked store whose operations are written once as procedures and driven twice.

    Subclasses write ``_get``, ``_create``, ``_apply``, ``_rename`` and ``_delete`` as
    generators of their own wire calls and two drivers, ``_drive_sync`` (the sync client)
    and ``_drive_async`` (the async client); the core contract is defined here on top of
    them, so the sync and async paths of a backend cannot drift apart. The capabilities
    come the same way: ``ProcedureHandleIndex`` (``_get_by_handle``, ``_delete_handle``),
    ``ProcedureUserIndex`` (``_list_user``, ``_delete_user``), ``ProcedurePurgeable``
    (``_purge``) and ``ProcedureCountable`` (``_count``).
    """

    @abstractmethod
    def _drive_sync(self, steps: Procedure[T]) -> T: ...

    @abstractmethod
    async def _drive_async(self, steps: Procedure[T]) -> T: ...

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


class ProcedureHandleIndex(ProcedureStore, HandleIndex):
    @abstractmethod
    def _get_by_handle(self, handle: str) -> Procedure[SessionRecord | None]: ...

    @abstractmethod
    def _delete_handle(self, handle: str) -> Procedure[SessionRecord | None]: ...

    def get_by_handle_sync(self, handle: str) -> SessionRecord | None:
        return self._drive_sync(self._get_by_handle(handle))

    def delete_handle_sync(self, handle: str) -> SessionRecord | None:
        return self._drive_sync(self._delete_handle(handle))

    async def get_by_handle(self, handle: str) -> SessionRecord | None:
        return await self._drive_async(self._get_by_handle(handle))

    async def delete_handle(self, handle: str) -> SessionRecord | None:
        return await self._drive_async(self._delete_handle(handle))


class ProcedureUserIndex(ProcedureStore, UserIndex):
    @abstractmethod
    def _list_user(self, user_id: str, now: float) -> Procedure[list[SessionRecord]]: ...

    @abstractmethod
    def _delete_user(self, user_id: str, except_handle: str | None) -> Procedure[int]: ...

    def list_user_sync(self, user_id: str, now: float) -> list[SessionRecord]:
        return self._drive_sync(self._list_user(user_id, now))

    def delete_user_sync(self, user_id: str, except_handle: str | None = None) -> int:
        return self._drive_sync(self._delete_user(user_id, except_handle))

    async def list_user(self, user_id: str, now: float) -> list[SessionRecord]:
        return await self._drive_async(self._list_user(user_id, now))

    async def delete_user(self, user_id: str, except_handle: str | None = None) -> int:
        return await self._drive_async(self._delete_user(user_id, except_handle))


class ProcedurePurgeable(ProcedureStore, Purgeable):
    @abstractmethod
    def _purge(self, now: float, batch_size: int) -> Procedure[int]: ...

    def purge_expired_sync(self, now: float, batch_size: int) -> int:
        return self._drive_sync(self._purge(now, batch_size))

    async def purge_expired(self, now: float, batch_size: int) -> int:
        return await self._drive_async(self._purge(now, batch_size))


class ProcedureCountable(ProcedureStore, Countable):
    @abstractmethod
    def _count(self, now: float) -> Procedure[int]: ...

    def count_sync(self, now: float) -> int:
        return self._drive_sync(self._count(now))

    async def count(self, now: float) -> int:
        return await self._drive_async(self._count(now))


class ProcedureLockable(ProcedureStore, Lockable):
    @abstractmethod
    def _acquire_lock(self, key: str, owner: str, now: float, lease: float) -> Procedure[bool]: ...

    @abstractmethod
    def _release_lock(self, key: str, owner: str) -> Procedure[bool]: ...

    def acquire_lock_sync(self, key: str, owner: str, now: float, lease: float) -> bool:
        return self._drive_sync(self._acquire_lock(key, owner, now, lease))

    def release_lock_sync(self, key: str, owner: str) -> bool:
        return self._drive_sync(self._release_lock(key, owner))

    async def acquire_lock(self, key: str, owner: str, now: float, lease: float) -> bool:
        return await self._drive_async(self._acquire_lock(key, owner, now, lease))

    async def release_lock(self, key: str, owner: str) -> bool:
        return await self._drive_async(self._release_lock(key, owner))
