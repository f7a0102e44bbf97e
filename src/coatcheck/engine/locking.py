"""Per-session locks: the requests of one session run one at a time, as PHP's and
ASP.NET's do, for apps whose handlers read a value and write it back
(``session["cart"] = session.get("cart", []) + [item]``), which deltas alone cannot make
safe when two requests of one session change the same key at once.

An edge takes the lock before it loads the session and frees it after the commit, also
when the app raised or the client went away (``SessionConfig.lock_sessions`` for every
request, or the routes an edge marks locked). Only a request that brings a token locks:
a new session has no other request to wait for. The lock is filed under the session's
storage key (the token's SHA-256, never the token) and is a lease
(``SessionConfig.lock_lease``): a worker that crashed while holding it locks its session
no longer than that. Waiting is a bounded backoff, written once as steps (``TryLock``,
``Wait``) and driven on both paths: the async one waits with ``asyncio.sleep`` and keeps
serving other requests, the sync one (a thread of a WSGI server) with ``time.sleep``, as a
sync server's thread waits on any lock. Past ``lock_timeout`` the request is refused with
``SessionLocked`` (409 Conflict, ``Retry-After``); a store that fails is
``StoreUnavailable`` (503), as for any load.

The cost: two store round trips per locked request (take, free), more while it waits.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coatcheck.core import tokens
from coatcheck.engine.operations import Op, Steps, run_async, run_sync
from coatcheck.errors import SessionLocked, StoreUnavailable
from coatcheck.stores.base import Lockable, Store

if TYPE_CHECKING:
    from coatcheck.engine.manager import SessionManager

__all__ = ["Held", "SessionLocks", "session_locks"]

logger = logging.getLogger("coatcheck")

OPERATION = "a per-session lock (lock_sessions, a route marked locked)"
"""What needs ``Lockable``, as ``MissingCapability`` names it."""

FIRST_WAIT = 0.005
"""Seconds before the second attempt; each wait doubles, up to ``LONGEST_WAIT``."""

LONGEST_WAIT = 0.1
"""A holder that frees its lock is noticed at most this late (plus jitter)."""


@dataclass(frozen=True, slots=True)
class Held:
    """A lock this request holds: the session's storage key and the owner value only this
    request knows (a holder whose lease ran out cannot free its successor's lock)."""

    key: str
    owner: str


@dataclass(frozen=True, slots=True)
class TryLock(Op):
    key: str
    owner: str
    now: float
    lease: float

    async def run(self, store: Store) -> bool:
        return await Lockable.of(store, OPERATION).acquire_lock(
            self.key, self.owner, self.now, self.lease
        )

    def run_sync(self, store: Store) -> bool:
        return Lockable.of(store, OPERATION).acquire_lock_sync(
            self.key, self.owner, self.now, self.lease
        )


@dataclass(frozen=True, slots=True)
class Wait(Op):
    """Wait before the next attempt: ``asyncio.sleep`` on the async path (the loop serves
    other requests meanwhile), ``time.sleep`` on the sync one."""

    seconds: float

    async def run(self, store: Store) -> None:
        await asyncio.sleep(self.seconds)

    def run_sync(self, store: Store) -> None:
        time.sleep(self.seconds)


class SessionLocks:
    """The locks of one manager's sessions. Built when an edge is set up (or on the first
    locked route), so a store without ``Lockable`` (the cookie store) fails then, with
    ``MissingCapability``, rather than on a request."""

    def __init__(self, manager: SessionManager) -> None:
        Lockable.of(manager.store, OPERATION)
        assert isinstance(manager.store, Store)  # (a Lockable store is a server-side one)
        self.store: Store = manager.store
        self.manager = manager
        self.monotonic = time.monotonic
        """The clock the wait is measured on (the manager's may be a test's, frozen)."""

    def _acquire(self, token: str | None) -> Steps[Held | None]:
        """Try, then wait a little longer each time, until ``lock_timeout``."""
        key = tokens.checked_storage_key(token) if token is not None else None
        if key is None:  # no token (a new session), or a malformed one: nothing to wait for
            return None
        config = self.manager.config
        held = Held(key, secrets.token_urlsafe(16))
        give_up = self.monotonic() + config.lock_timeout
        wait = FIRST_WAIT
        while True:
            if (yield TryLock(key, held.owner, self.manager.clock(), config.lock_lease)):
                return held
            left = give_up - self.monotonic()
            if left <= 0:
                raise SessionLocked(retry_after=1)
            yield Wait(min(left, wait * random.uniform(0.5, 1.0)))  # (jitter)
            wait = min(wait * 2, LONGEST_WAIT)

    async def acquire(self, token: str | None) -> Held | None:
        """The lock of the session ``token`` names (None: no token, nothing to lock);
        SessionLocked past ``lock_timeout``, StoreUnavailable when the store fails."""
        return await run_async(self._acquire(token), self.store)

    def acquire_sync(self, token: str | None) -> Held | None:
        return run_sync(self._acquire(token), self.store)

    async def release(self, held: Held | None) -> None:
        """Free ``held``. Never raises for the store: the response is already decided, and
        a lock that could not be freed ends with its lease (logged)."""
        if held is None:
            return
        try:
            await Lockable.of(self.store, OPERATION).release_lock(held.key, held.owner)
        except StoreUnavailable as exc:
            logger.warning("session lock not released (its lease will end it): %s", exc)

    def release_sync(self, held: Held | None) -> None:
        if held is None:
            return
        try:
            Lockable.of(self.store, OPERATION).release_lock_sync(held.key, held.owner)
        except StoreUnavailable as exc:
            logger.warning("session lock not released (its lease will end it): %s", exc)


_LOCKS: weakref.WeakKeyDictionary[SessionManager, SessionLocks] = weakref.WeakKeyDictionary()


def session_locks(manager: SessionManager) -> SessionLocks:
    """The one ``SessionLocks`` of ``manager`` (edges and route markers share it)."""
    locks = _LOCKS.get(manager)
    if locks is None:
        locks = _LOCKS[manager] = SessionLocks(manager)
    return locks
