"""Sessions that travel in the cookie: the contract a client-side store meets, and the
procedures the manager runs for it instead of its server-side ones.

With a server-side store the client holds a token naming a record. With a client-side
store (``CookieStore``) the "token" *is* the sealed session: ``load`` opens it, ``commit``
seals the whole new state and returns it as ``CommitResult.token``, so every edge delivers
it exactly as it delivers a token. The policy is the same pure ``policy`` module; only the
carrier differs, which is why this is a second pair of procedures and not a second engine.

What a cookie cannot do, and what this module does about it:

- It cannot be taken back. A copy of an old cookie stays valid until the deadlines sealed
  inside it, even after logout. With a ``revocations`` store (any coatcheck store, kept
  small: at most one record per user) a logout records the session's handle and
  ``revoke_user`` records a per-user "not before" time; an authenticated session is then
  checked against it at load, one read, as ASVS 5.0 7.4.1 asks of self-contained tokens.
  Anonymous sessions never cost a store call.
- It cannot be listed or ended by handle from elsewhere: nothing on the server names it.
  The store declares no ``UserIndex`` or ``HandleIndex``, so the manager refuses
  ``list_user_sessions``, ``revoke(handle)`` and ``is_active`` with MissingCapability.
- It is a snapshot, not a delta: of two concurrent requests that change different keys,
  the browser keeps the cookie of the one that answered last.
- It has a size: a browser keeps 4096 bytes of name plus value. A larger session fails at
  commit with CookieTooLargeError naming the size; it is never truncated or split.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from coatcheck.core import events as ev
from coatcheck.core import policy, tokens
from coatcheck.core.client import ClientInfo
from coatcheck.core.config import SessionConfig
from coatcheck.core.policy import Action
from coatcheck.core.record import Patch, SessionRecord, encode_value
from coatcheck.core.session import Session
from coatcheck.engine.operations import Get, Steps, Upsert
from coatcheck.engine.results import CLEARED, NO_CHANGE, CommitResult
from coatcheck.errors import CookieTooLargeError, InvalidCookie, MissingCapability
from coatcheck.stores.base import ClientSide

COOKIE_LIMIT = 4096
"""Bytes of cookie name plus value every browser keeps (RFC 6265 section 6.1)."""

NOT_BEFORE = "not_before"
KEEP = "keep"
HANDLE_PREFIX = "h:"
"""Keys of a revocation record's data: the user's "not before" time, the one session it
spares, and ``h:<handle>`` -> deadline for each session ended by logout."""


def revocation_key(user_id: str) -> str:
    """Storage key of a user's revocation record: never a token's hash, since the preimage
    carries a prefix and a NUL that no token has."""
    return hashlib.sha256(f"coatcheck.revocation\x00{user_id}".encode()).hexdigest()


def is_revoked(entry: SessionRecord, record: SessionRecord) -> bool:
    """Does the user's revocation record end the session ``record``?

    A session whose login time is at or before "not before" is ended (a tie ends it: a
    session cannot prove it came after), unless it is the one session the revocation spared.
    """
    data = entry.data
    if HANDLE_PREFIX + record.handle in data:
        return True
    not_before = data.get(NOT_BEFORE)
    if not isinstance(not_before, (int, float)) or data.get(KEEP) == record.handle:
        return False
    issued = record.auth_at if record.auth_at is not None else record.created_at
    return issued <= not_before


class Host(Protocol):
    """What these procedures need of the manager that runs them: its configuration, its
    clock and its event sinks. A protocol, so this module never imports the manager."""

    config: SessionConfig
    clock: Callable[[], float]

    def emit(
        self, name: str, *, handle: str | None = None, user_id: str | None = None, **detail: Any
    ) -> None: ...

    def login_detail(self, session: Session) -> dict[str, str]: ...


class ClientSideSessions:
    """The manager's load / commit / revoke_user procedures for a client-side store.

    Like the server-side ones they are generators of store operations, driven by the same
    async and sync drivers; their operations go to the revocation store, and there are
    none at all without one.
    """

    __slots__ = ("_max_lifetime", "manager", "revocations", "sealer")

    def __init__(self, manager: Host, store: ClientSide) -> None:
        self.manager = manager
        self.sealer = store
        self.revocations = store.revocations
        config = manager.config
        self._max_lifetime = max(config.absolute_timeout, config.remember_timeout)
        """No session outlives this from its login, so neither must a revocation."""

    def load(self, token: str | None, client: ClientInfo | None) -> Steps[Session]:
        manager = self.manager
        now = manager.clock()
        if token is None:
            return Session(None, now=now, client=client)
        try:
            record = self.sealer.unseal(token)
        except InvalidCookie as exc:
            manager.emit(ev.REJECTED, reason=exc.reason)
            return Session.for_dead_token(now, client)
        verdict = policy.check(record, now)
        if verdict is not policy.Verdict.VALID:
            manager.emit(
                ev.EXPIRED, handle=record.handle, user_id=record.user_id, reason=verdict.value
            )
            return Session.for_dead_token(now, client)
        if record.user_id is not None and self.revocations is not None:
            entry = yield Get(revocation_key(record.user_id))
            if entry is not None and is_revoked(entry, record):
                manager.emit(
                    ev.REJECTED, handle=record.handle, user_id=record.user_id, reason="revoked"
                )
                return Session.for_dead_token(now, client)
        return Session(record, now=now, client=client)

    def commit(self, session: Session) -> Steps[CommitResult]:
        manager = self.manager
        now = manager.clock()
        plan = policy.plan_commit(session, manager.config, now, tokens.new_handle())
        session.close()
        old = session.record
        action = plan.action
        if action is Action.NOTHING:
            return NO_CHANGE
        if action is Action.CLEAR:  # a cookie that no longer opens: the browser drops it
            return CLEARED

        if action is Action.DELETE:
            result = CommitResult(clear=True)
        else:
            if plan.record is not None:  # CREATE, REPLACE: a whole new session
                new = plan.record
            else:  # TOUCH, UPDATE, RENAME: the loaded session, patched
                assert old is not None and plan.patch is not None
                new = dataclasses.replace(old, data=dict(old.data))
                plan.patch.apply_to(new)
            value = self._seal(new)
            session.stored(new)
            # Every re-seal is delivered, so a remember-me cookie must stay persistent.
            result = CommitResult(
                token=value, max_age=policy.cookie_max_age(new.remember, new.absolute_at, now)
            )

        if (
            (action is Action.DELETE or action is Action.REPLACE)
            and old is not None
            and old.user_id is not None
            and self.revocations is not None
        ):
            # Logout: copies of this cookie must not outlive it.
            yield from self._record_revocation(
                old.user_id, now, {HANDLE_PREFIX + old.handle: old.absolute_at}
            )

        for name in plan.events:
            if name == ev.LOGOUT and old is not None:
                manager.emit(name, handle=old.handle, user_id=old.user_id)
            elif name == ev.LOGIN:
                detail = manager.login_detail(session)
                manager.emit(name, handle=session.handle, user_id=session.user_id, **detail)
            else:
                manager.emit(name, handle=session.handle, user_id=session.user_id)
        return result

    def revoke_user(self, user_id: str, except_handle: str | None) -> Steps[int]:
        """End every cookie session of ``user_id`` logged in until now, except the one with
        ``except_handle``. Returns 0: nothing on the server knows how many there were."""
        if self.revocations is None:
            raise MissingCapability(
                type(self.sealer).__name__,
                "ClientSide.revocations",
                "revoke_user",
                " (CookieStore(keys, revocations=...)): without a revocation store, a cookie "
                "stays valid until the deadlines sealed inside it",
            )
        manager = self.manager
        now = manager.clock()
        yield from self._record_revocation(user_id, now, {NOT_BEFORE: now, KEEP: except_handle})
        manager.emit(ev.REVOKED, user_id=user_id, not_before=now, kept=except_handle)
        return 0

    # -- helpers ---------------------------------------------------------------------------
    def _seal(self, record: SessionRecord) -> str:
        value = self.sealer.seal(record)
        size = len(self.manager.config.cookie_name) + len(value)
        if size > COOKIE_LIMIT:
            raise CookieTooLargeError(size)
        return value

    def _record_revocation(self, user_id: str, now: float, items: Mapping[str, Any]) -> Steps[None]:
        """Merge ``items`` into the user's revocation record (a delta: concurrent logouts
        keep each other's entries), dropping handle entries whose sessions have ended."""
        key = revocation_key(user_id)
        until = now + self._max_lifetime
        existing = yield Get(key)
        stale: frozenset[str] = frozenset()
        if existing is not None:
            until = max(until, existing.expires_at)
            stale = frozenset(
                k
                for k, v in existing.data.items()
                if k.startswith(HANDLE_PREFIX) and isinstance(v, (int, float)) and v <= now
            )
        patch = Patch(
            set_json={k: encode_value(k, v) for k, v in items.items()},
            set_items=dict(items),
            removed=stale.difference(items),
            fields={"last_seen_at": now, "expires_at": until, "absolute_at": until},
        )
        fresh = SessionRecord(
            key=key,
            handle=tokens.new_handle(),
            data=dict(items),
            created_at=now,
            last_seen_at=now,
            expires_at=until,
            absolute_at=until,
        )
        yield Upsert(patch, fresh)
