"""Session data encrypted at rest: a wrapper that seals every value before any server store
sees it, and opens it on the way back.

GDPR Art. 32 asks for encryption of personal data "where appropriate"; a session's data is
what an application chose to remember about a person, and a database file, a Redis dump or
a backup is where it leaks. ``encrypted(store, ring)`` (or ``COATCHECK_DATA_KEYS`` for every
store ``from_url`` builds) puts AES-256-GCM between the engine and the backend:

- **One sealed value per key.** Deltas stay deltas: each changed value is sealed on its
  own and the backend applies ``set`` and ``unset`` atomically as before, so two requests
  that change different keys still both survive, with the same round trips.
- **Bound to its record and key.** The associated data is the record's public handle and
  the data key, so a ciphertext copied to another record or another key fails to open.
  The handle, not the storage key, because the storage key changes at every login and
  rotation (a rename), and re-sealing every value there would cost a read and race a
  concurrent write; the handle is the record's identity for its whole life.
- **What stays in clear:** the record's metadata (deadlines, user id, the reduced client
  fields, CSRF secret), which the store's indexes and the engine's checks need. A value
  that does not open (a retired key, a copied ciphertext, a damaged byte) makes the record
  unreadable: the load answers "no such session" and logs a warning, so the visitor gets a
  fresh session and nothing continues with half a session.
- **Atomic operations by compare-and-set.** A backend cannot ``incr`` or ``append`` a
  sealed value, so a patch with ``ops`` is worked out here on the record as read (the
  request's own load, see below), opening the values the operations touch and applying
  them (``core.atomic.apply_op``, the reference rules); each result is written sealed
  with a ``swap`` operation, which the store applies only if the value it holds is still
  the one read (its stored text, so the
  same check on every backend: Python on memory, Memcached, SQLite and PostgreSQL, Lua on
  Redis). A concurrent write in between makes the store refuse the whole patch
  (``SwapRefused``) and the wrapper reads again and retries, with a short random backoff,
  so no update is lost: an operation lands on exactly the value it was computed from. The
  per-session lock (``Lockable``) was the other way, and is refused: a plain write of the
  same key takes no lock, so a read-modify-write under the lock could still overwrite it.
- **The byte limit is on plaintext.** ``Patch.max_bytes`` means the size of the data the
  application wrote (``atomic.data_bytes`` of the opened values), the same figure with or
  without encryption (sealing adds about a third and a fixed overhead per value, which
  must not turn a session that fits into one refused). A limited patch is worked out on
  the record read like an operation; the store is given, as its own limit, the exact size
  of the sealed data the write would leave as read, so a concurrent write that made the
  data grow makes it refuse, and the wrapper reads again (the concurrent writers of
  different keys cannot together pass the limit). The one slack: base64 rounds, so a
  concurrent rewrite of another key by a value up to 2 bytes longer may seal to the same
  length and pass unseen. Set keys go as ``swap`` as well, so
  every backend measures the data in the same compact way.
- **Round trips: none extra.** The conditional write needs the record as read, and the
  request read it already: ``get`` remembers the sealed record it returned (ciphertext
  and metadata, ``READ_BASES`` at most), and the next write of that key starts from it.
  So a commit costs the load and one write, as without encryption, with operations, a
  limit or neither. If another write landed since the load, the store refuses (or the
  remembered read refuses the patch), and the wrapper reads again: two round trips per
  lost race. A write of a key this process did not read (a patch from elsewhere) reads
  first: two.
- **Values written before the keys were set** are read as they are, so turning encryption
  on logs nobody out; ``coatcheck rekey`` seals them, and any write seals what it writes.

Stored form of a sealed value: the JSON string ``"ccs1." + base64url(sealed)``, where the
sealed bytes are the value's own JSON text (see ``security.sealing`` for the wire format).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from coatcheck.core.atomic import Op, SwapRefused, encoded_bytes, swap_op
from coatcheck.core.record import Patch, SessionRecord, encode_key, encode_value
from coatcheck.errors import ConfigError, SessionDataError, SessionTooLarge, StoreUnavailable
from coatcheck.security.sealing import DATA_CONTEXT, Key, KeyRing, UnsealError, keys_from_env
from coatcheck.stores.base import (
    CAPABILITIES,
    ClientSide,
    Countable,
    HandleIndex,
    Lockable,
    Purgeable,
    Statistics,
    Store,
    UserIndex,
    capabilities,
)

__all__ = [
    "ENV_DATA_KEYS",
    "PREFIX",
    "DataSealer",
    "EncryptedStore",
    "data_ring",
    "encrypted",
    "encrypted_class",
    "encrypted_from_env",
]

log = logging.getLogger("coatcheck.stores.encrypted")

ENV_DATA_KEYS = "COATCHECK_DATA_KEYS"
"""Keys for data at rest, in the ``COATCHECK_COOKIE_KEYS`` format (newest first)."""
PREFIX = "ccs1."
"""Marks a stored value as sealed (version 1)."""
MAX_SEALED = 1 << 24
"""The longest sealed text opened (16 MiB): a bound before any decoding, far above the
largest session a store accepts."""


def data_ring(keys: list[Key] | KeyRing) -> KeyRing:
    """A ring for data at rest: the same keys as given, in the data context (a cookie
    sealed under one of them never opens as a stored value)."""
    if isinstance(keys, KeyRing):
        keys = list(keys.keys)
    return KeyRing(keys, context=DATA_CONTEXT)


class Unreadable(Exception):
    """A sealed value that does not open with this ring and this record."""


class DataSealer:
    """Seals and opens the values of one record's data with a data ring."""

    __slots__ = ("ring",)

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    @staticmethod
    def _ad(handle: str, key: str) -> bytes:
        return (
            handle.encode("utf-8", "surrogatepass") + b"\x00" + key.encode("utf-8", "surrogatepass")
        )

    def seal_json(self, handle: str, key: str, json_text: str) -> str:
        """The stored (sealed) form of one value, given its JSON text."""
        plain = json_text.encode("utf-8", "surrogatepass")
        return PREFIX + self.ring.seal(plain, self._ad(handle, key))

    def is_sealed(self, value: object) -> bool:
        return isinstance(value, str) and value.startswith(PREFIX)

    def primary_kid(self) -> str:
        return self.ring.primary.kid

    def open_value(self, handle: str, key: str, value: Any) -> Any:
        """The value a sealed one holds; a value stored in clear is returned as it is."""
        if not (isinstance(value, str) and value.startswith(PREFIX)):
            return value
        try:
            plain = self.ring.unseal(
                value[len(PREFIX) :], self._ad(handle, key), max_length=MAX_SEALED
            )
            return json.loads(plain)
        except (UnsealError, ValueError) as exc:
            raise Unreadable(str(exc)) from None

    def open_record(self, record: SessionRecord) -> SessionRecord:
        handle = record.handle
        data = record.data
        for key, value in data.items():
            if isinstance(value, str) and value.startswith(PREFIX):
                data[key] = self.open_value(handle, key, value)
        return record

    def seal_record(self, record: SessionRecord) -> SessionRecord:
        """A copy of ``record`` whose data values are sealed (the caller's record is kept
        in clear: the engine goes on using it)."""
        handle = record.handle
        sealed: dict[str, Any] = {}
        for key, value in record.data.items():
            sealed[key] = self.seal_json(handle, key, encode_value(key, value))
        return SessionRecord(
            key=record.key,
            handle=record.handle,
            data=sealed,
            created_at=record.created_at,
            last_seen_at=record.last_seen_at,
            expires_at=record.expires_at,
            absolute_at=record.absolute_at,
            user_id=record.user_id,
            auth_at=record.auth_at,
            remember=record.remember,
            user_agent=record.user_agent,
            ip=record.ip,
            meta=record.meta,
        )

    def seal_patch(self, patch: Patch) -> Patch:
        if not patch.set_json:
            return patch
        handle = patch.handle
        if handle is None:
            # An engine-internal record (a revocation list, the service's API keys) written
            # without knowing its handle: nothing of a session's data, kept in clear.
            return patch
        items = {k: self.seal_json(handle, k, text) for k, text in patch.set_json.items()}
        return Patch(
            {k: encode_key(v) for k, v in items.items()},
            items,
            patch.removed,
            patch.fields,
            patch.expect_handle,
            patch.ops,
            patch.max_bytes,
            handle,
        )


READ_BASES = 1024
"""Records remembered as read, each until the next write of its key (past the bound all
are dropped: a write then reads first): ciphertext and metadata, never an opened value.
The requests in flight in one process are far fewer; at 64 KiB a session it is 64 MiB at
most."""
RETRIES = 64
"""Reads and conditional writes of one patch before the wrapper gives up (a store under
a storm of writers of one session); each lost race waits a little longer."""


def backoff(attempt: int) -> float:
    """Seconds to wait after the ``attempt``-th lost race: random, so the losers spread."""
    return random.uniform(0, min(0.02, 0.0005 * (attempt + 1)))


def needs_read(patch: Patch) -> bool:
    """Must the wrapper read the record to write ``patch``? With operations (a backend
    cannot compute on sealed values) or a byte limit on data it changes (measured on
    plaintext)."""
    return bool(patch.ops) or (patch.max_bytes is not None and bool(patch.set_json))


class EncryptedStore(Store):
    """The core contract, sealing on the way in and opening on the way out; capabilities
    of the wrapped store are passed through by the subclass ``encrypted`` builds."""

    def __init__(self, inner: Store, ring: KeyRing) -> None:
        self.inner = inner
        self.sealer = DataSealer(ring)
        self._read: dict[str, SessionRecord] = {}

    def __repr__(self) -> str:
        return f"encrypted({self.inner!r}, kids={[k.kid for k in self.sealer.ring.keys]!r})"

    def _open(self, record: SessionRecord | None) -> SessionRecord | None:
        if record is None:
            return None
        try:
            return self.sealer.open_record(record)
        except Unreadable as exc:
            log.warning(
                "session %s has data that does not open with the data keys (%s); treated as "
                "no session",
                record.handle,
                exc,
            )
            return None

    def _open_all(self, records: list[SessionRecord]) -> list[SessionRecord]:
        return [r for r in (self._open(record) for record in records) if r is not None]

    def _resolve(self, record: SessionRecord | None, patch: Patch) -> Patch | None:
        """The patch for the inner store that does what ``patch`` does to ``record`` as
        read (sealed, operations worked out as conditional ``swap``\\ s); None when
        there is no record for it (False to the caller). Raises the refusal (a type
        clash, ``SessionTooLarge`` on the plaintext) as the store would."""
        if record is None or not patch.fits(record.handle):
            return None
        handle = record.handle
        sealer = self.sealer
        stored = record.data
        try:
            plain = {k: sealer.open_value(handle, k, v) for k, v in stored.items()}
        except Unreadable as exc:
            log.warning("session %s has data that does not open (%s)", handle, exc)
            return None
        after = patch.new_data(plain)  # the reference rules: raises the refusal
        texts = {k: encode_value(k, v) for k, v in stored.items() if k not in patch.removed}
        swaps: list[Op] = []
        for key in dict.fromkeys([*patch.set_json, *(op[1] for op in patch.ops)]):
            value = after[key]
            sealed = sealer.seal_json(handle, key, encode_value(key, value))
            sealed_text = encode_key(sealed)
            was = encode_value(key, stored[key]) if key in stored else None
            swaps.append(swap_op(key, was, sealed, sealed_text))
            texts[key] = sealed_text
        limit = None if patch.max_bytes is None else encoded_bytes(texts)
        removed = patch.removed - {op[1] for op in swaps}
        return Patch(
            {}, {}, removed, patch.fields, patch.expect_handle, tuple(swaps), limit, handle
        )

    def _remember(self, record: SessionRecord | None) -> SessionRecord | None:
        """Keep the record as read (sealed; its own copy of the data, which opening
        replaces value by value) as the base of the next conditional write of its key."""
        if record is not None:
            read = self._read
            if len(read) >= READ_BASES:
                read.clear()
            read[record.key] = replace(record, data=dict(record.data))
        return record

    def _based(
        self, cached: SessionRecord | None, record: SessionRecord | None, patch: Patch
    ) -> Patch | bool | None:
        """``_resolve`` on ``record``; when it is a remembered read that refuses (it may be
        stale: a concurrent write may have removed or changed a value), True: read again."""
        try:
            inner = self._resolve(record, patch)
        except SessionDataError:
            if cached is not None:
                return True
            raise
        if inner is None and cached is not None:
            return True
        return inner

    def _apply_checked(self, key: str, new_key: str | None, patch: Patch) -> bool:
        """``apply``/``rename`` of a patch that needs a read: the compare-and-set loop,
        from the record as the request's load read it when this process did."""
        for attempt in range(RETRIES):
            cached = self._read.pop(key, None) if attempt == 0 else None
            based = self._based(cached, cached or self.inner.get_sync(key), patch)
            if based is True:
                continue
            inner = based
            if not isinstance(inner, Patch):
                return False
            try:
                if new_key is None:
                    return self.inner.apply_sync(key, inner)
                return self.inner.rename_sync(key, new_key, inner)
            except (SwapRefused, SessionTooLarge):
                # Another write landed since the read (a sealed-size refusal too: the data
                # grew); read again, the plaintext check decides.
                time.sleep(backoff(attempt))
        raise StoreUnavailable(f"{self!r}: too many concurrent writers of one session")

    async def _apply_checked_async(self, key: str, new_key: str | None, patch: Patch) -> bool:
        for attempt in range(RETRIES):
            cached = self._read.pop(key, None) if attempt == 0 else None
            based = self._based(cached, cached or await self.inner.get(key), patch)
            if based is True:
                continue
            inner = based
            if not isinstance(inner, Patch):
                return False
            try:
                if new_key is None:
                    return await self.inner.apply(key, inner)
                return await self.inner.rename(key, new_key, inner)
            except (SwapRefused, SessionTooLarge):
                await asyncio.sleep(backoff(attempt))
        raise StoreUnavailable(f"{self!r}: too many concurrent writers of one session")

    # -- sync
    def get_sync(self, key: str) -> SessionRecord | None:
        return self._open(self._remember(self.inner.get_sync(key)))

    def create_sync(self, record: SessionRecord) -> None:
        self.inner.create_sync(self.sealer.seal_record(record))

    def apply_sync(self, key: str, patch: Patch) -> bool:
        if needs_read(patch):
            return self._apply_checked(key, None, patch)
        return self.inner.apply_sync(key, self.sealer.seal_patch(patch))

    def rename_sync(self, old_key: str, new_key: str, patch: Patch) -> bool:
        if needs_read(patch):
            return self._apply_checked(old_key, new_key, patch)
        return self.inner.rename_sync(old_key, new_key, self.sealer.seal_patch(patch))

    def delete_sync(self, key: str) -> bool:
        return self.inner.delete_sync(key)

    def close_sync(self) -> None:
        self.inner.close_sync()

    # -- async
    async def get(self, key: str) -> SessionRecord | None:
        return self._open(self._remember(await self.inner.get(key)))

    async def create(self, record: SessionRecord) -> None:
        await self.inner.create(self.sealer.seal_record(record))

    async def apply(self, key: str, patch: Patch) -> bool:
        if needs_read(patch):
            return await self._apply_checked_async(key, None, patch)
        return await self.inner.apply(key, self.sealer.seal_patch(patch))

    async def rename(self, old_key: str, new_key: str, patch: Patch) -> bool:
        if needs_read(patch):
            return await self._apply_checked_async(old_key, new_key, patch)
        return await self.inner.rename(old_key, new_key, self.sealer.seal_patch(patch))

    async def delete(self, key: str) -> bool:
        return await self.inner.delete(key)

    async def close(self) -> None:
        await self.inner.close()


class _HandleIndex(EncryptedStore, HandleIndex):
    def get_by_handle_sync(self, handle: str) -> SessionRecord | None:
        return self._open(HandleIndex.of(self.inner, "get_by_handle").get_by_handle_sync(handle))

    def delete_handle_sync(self, handle: str) -> SessionRecord | None:
        return self._open(HandleIndex.of(self.inner, "delete_handle").delete_handle_sync(handle))

    async def get_by_handle(self, handle: str) -> SessionRecord | None:
        return self._open(await HandleIndex.of(self.inner, "get_by_handle").get_by_handle(handle))

    async def delete_handle(self, handle: str) -> SessionRecord | None:
        inner = HandleIndex.of(self.inner, "delete_handle")
        return self._open(await inner.delete_handle(handle))


class _UserIndex(EncryptedStore, UserIndex):
    def list_user_sync(self, user_id: str, now: float) -> list[SessionRecord]:
        return self._open_all(UserIndex.of(self.inner, "list_user").list_user_sync(user_id, now))

    def delete_user_sync(self, user_id: str, except_handle: str | None = None) -> int:
        return UserIndex.of(self.inner, "delete_user").delete_user_sync(user_id, except_handle)

    async def list_user(self, user_id: str, now: float) -> list[SessionRecord]:
        return self._open_all(await UserIndex.of(self.inner, "list_user").list_user(user_id, now))

    async def delete_user(self, user_id: str, except_handle: str | None = None) -> int:
        return await UserIndex.of(self.inner, "delete_user").delete_user(user_id, except_handle)


class _Purgeable(EncryptedStore, Purgeable):
    def purge_expired_sync(self, now: float, batch_size: int) -> int:
        return Purgeable.of(self.inner, "purge_expired").purge_expired_sync(now, batch_size)

    async def purge_expired(self, now: float, batch_size: int) -> int:
        return await Purgeable.of(self.inner, "purge_expired").purge_expired(now, batch_size)


class _Countable(EncryptedStore, Countable):
    def count_sync(self, now: float) -> int:
        return Countable.of(self.inner, "count").count_sync(now)

    async def count(self, now: float) -> int:
        return await Countable.of(self.inner, "count").count(now)


class _Statistics(_Countable, Statistics):
    def stats_sync(self, now: float, *, top: int = 10, soon: float = 300.0) -> dict[str, Any]:
        return Statistics.of(self.inner, "stats").stats_sync(now, top=top, soon=soon)


class _Lockable(EncryptedStore, Lockable):
    """Locks hold no session data: passed through as they are."""

    def acquire_lock_sync(self, key: str, owner: str, now: float, lease: float) -> bool:
        inner = Lockable.of(self.inner, "acquire_lock")
        return inner.acquire_lock_sync(key, owner, now, lease)

    def release_lock_sync(self, key: str, owner: str) -> bool:
        return Lockable.of(self.inner, "release_lock").release_lock_sync(key, owner)

    async def acquire_lock(self, key: str, owner: str, now: float, lease: float) -> bool:
        inner = Lockable.of(self.inner, "acquire_lock")
        return await inner.acquire_lock(key, owner, now, lease)

    async def release_lock(self, key: str, owner: str) -> bool:
        return await Lockable.of(self.inner, "release_lock").release_lock(key, owner)


_PASS_THROUGH: dict[type, type[EncryptedStore]] = {
    HandleIndex: _HandleIndex,
    UserIndex: _UserIndex,
    Purgeable: _Purgeable,
    Statistics: _Statistics,
    Countable: _Countable,
    Lockable: _Lockable,
}
_CLASSES: dict[frozenset[type], type[EncryptedStore]] = {}


def encrypted_class(kind: type[Store]) -> type[EncryptedStore]:
    """The wrapper class for stores of type ``kind``: it declares exactly the capabilities
    ``kind`` declares (one class per set of capabilities, built once)."""
    caps = frozenset(c for c in capabilities(kind) if c in _PASS_THROUGH)
    if Statistics in caps:
        caps = caps - {Countable}
    found = _CLASSES.get(caps)
    if found is None:
        names = [c.__name__ for c in CAPABILITIES if c in caps]
        bases = tuple(_PASS_THROUGH[c] for c in CAPABILITIES if c in caps) or (EncryptedStore,)
        found = type("Encrypted" + "".join(names), bases, {"__doc__": EncryptedStore.__doc__})
        _CLASSES[caps] = found
    return found


def encrypted(store: Store, ring: KeyRing | list[Key]) -> EncryptedStore:
    """``store`` with its session data sealed at rest under ``ring`` (keys newest first),
    declaring exactly the capabilities ``store`` declares."""
    if isinstance(store, ClientSide):
        raise ConfigError(
            "a cookie store seals its sessions already; data keys are for server stores"
        )
    if isinstance(store, EncryptedStore):
        raise ConfigError("this store is encrypted already")
    return encrypted_class(type(store))(store, data_ring(ring))


def encrypted_from_env(store: Store, environ: Mapping[str, str] | None = None) -> Store:
    """``store`` encrypted under ``COATCHECK_DATA_KEYS`` when it is set, else ``store``."""
    env = os.environ if environ is None else environ
    if not env.get(ENV_DATA_KEYS, "").strip():
        return store
    return encrypted(store, keys_from_env(env, ENV_DATA_KEYS))
