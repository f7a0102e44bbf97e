"""Re-sealing stored session data under the newest data key (``coatcheck rekey``).

After a new key is put first in ``COATCHECK_DATA_KEYS``, every write seals what it writes
with it, but a value nobody writes again stays sealed under the old key, which therefore
cannot be dropped. ``rekey_page`` walks the records of the inner store (``Scannable``)
one page at a time and rewrites each value not sealed under the newest key (and each one
still stored in clear) while traffic runs:

- **Never over a concurrent write.** Each value is rewritten with a ``swap`` operation
  (``core.atomic``): the store applies it only if the value is still the one read. A
  write in between refuses the patch; the record is read again and only what is still
  under an old key is re-sealed (the concurrent write sealed its own values under the
  newest key already). A record that is gone, or whose handle changed, is left alone.
- **Values that do not open** (a retired key, damage) are counted and left: rekey never
  destroys data it cannot read, and the load treats such a record as no session.
- **Resumable.** The page's cursor is the store's own (``Scannable.scan_sync``); the
  command keeps it in a file between pages, so an interrupted run goes on from there.

Memcached cannot enumerate its items: its records are re-sealed by their next write and
expire with their session; ``rekey_page`` refuses it by name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from coatcheck.core.atomic import Op, SwapRefused, swap_op
from coatcheck.core.record import Patch, SessionRecord, encode_key, encode_value
from coatcheck.errors import ConfigError, MissingCapability, StoreUnavailable
from coatcheck.security.sealing import key_id
from coatcheck.stores.base import Scannable
from coatcheck.stores.encrypted import PREFIX, RETRIES, EncryptedStore, Unreadable, backoff

__all__ = ["Tally", "rekey_page", "reseal_record", "scanner"]


@dataclass
class Tally:
    """What a walk did so far, record by record."""

    resealed: int = 0
    current: int = 0
    unreadable: int = 0
    gone: int = 0

    @property
    def seen(self) -> int:
        return self.resealed + self.current + self.unreadable + self.gone


def scanner(store: object) -> tuple[EncryptedStore, Scannable]:
    """The encrypted store and its enumerable inner store, or the error that says why
    rekey cannot run on ``store``."""
    if not isinstance(store, EncryptedStore):
        raise ConfigError(
            "the store is not encrypted: set COATCHECK_DATA_KEYS (newest key first) to rekey"
        )
    inner = store.inner
    if not isinstance(inner, Scannable):
        name = type(inner).__name__
        raise MissingCapability(
            name,
            "Scannable",
            "rekey",
            f": {name} cannot enumerate its records; each is re-sealed under the newest key "
            "by its next write and expires with its session; keep the old key until the "
            "longest session lifetime has passed",
        )
    return store, inner


def _swaps(store: EncryptedStore, record: SessionRecord) -> list[Op] | None:
    """The swaps that re-seal ``record``'s stale values; None when one does not open."""
    sealer = store.sealer
    newest = sealer.primary_kid()
    swaps: list[Op] = []
    for key, value in record.data.items():
        sealed_now = isinstance(value, str) and value.startswith(PREFIX)
        if sealed_now and key_id(value[len(PREFIX) :]) == newest:
            continue
        try:
            plain = sealer.open_value(record.handle, key, value)
        except Unreadable:
            return None
        sealed = sealer.seal_json(record.handle, key, encode_value(key, plain))
        swaps.append(swap_op(key, encode_value(key, value), sealed, encode_key(sealed)))
    return swaps


def reseal_record(store: EncryptedStore, record: SessionRecord, tally: Tally) -> None:
    """Re-seal the stale values of one record as read, by compare-and-set."""
    inner = store.inner
    for attempt in range(RETRIES):
        swaps = _swaps(store, record)
        if swaps is None:
            tally.unreadable += 1
            return
        if not swaps:
            tally.current += 1
            return
        patch = Patch({}, {}, frozenset(), {}, record.handle, tuple(swaps), None, record.handle)
        try:
            if inner.apply_sync(record.key, patch):
                tally.resealed += 1
            else:
                tally.gone += 1
            return
        except SwapRefused:
            time.sleep(backoff(attempt))
        again = inner.get_sync(record.key)
        if again is None or again.handle != record.handle:
            tally.gone += 1
            return
        record = again
    raise StoreUnavailable(f"session {record.handle}: too many concurrent writers; run rekey again")


def rekey_page(store: object, cursor: str, count: int, tally: Tally) -> str | None:
    """Re-seal one page of records from ``cursor``; the cursor after it (None: done)."""
    encrypted, inner = scanner(store)
    records, after = inner.scan_sync(cursor, count)
    for record in records:
        reseal_record(encrypted, record, tally)
    return after
