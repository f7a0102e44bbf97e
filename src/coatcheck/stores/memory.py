"""MemoryStore: a process-local store for tests, development and single-process apps.

Records are kept as JSON text per key, so the store enforces the same JSON-only rule as
every other backend and a caller can never mutate a stored record by accident. A lock makes
each operation atomic for threaded (WSGI) callers as well as for the event loop.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections import Counter
from typing import Any

from coatcheck.core.atomic import MISSING, apply_op, encoded_bytes
from coatcheck.core.record import Patch, SessionRecord, encode_value
from coatcheck.errors import SessionTooLarge
from coatcheck.stores.base import (
    InlineCountable,
    InlineHandleIndex,
    InlineLockable,
    InlinePurgeable,
    InlineStore,
    InlineUserIndex,
    Scannable,
    Statistics,
)
from coatcheck.stores.damage import sound, warn

_SCALARS = frozenset({str, int, bool, type(None)})
"""Exact types whose decoded value is immutable and equal to what its JSON text decodes
to (JSON round-trips these exactly), so a copy handed out may share the object. Finite
floats qualify too (``_is_scalar``); NaN does not, as no decoded NaN equals another."""


def _is_scalar(value: Any) -> bool:
    kind = type(value)
    return kind in _SCALARS or (kind is float and math.isfinite(value))


@dataclasses.dataclass(slots=True)
class _Entry:
    record: SessionRecord
    """Metadata; ``record.data`` and ``record.meta`` are unused (kept empty)."""
    data: dict[str, str]
    """Session data as key -> JSON text."""
    meta: str
    """Engine metadata as JSON text."""
    plain: dict[str, Any] | None
    """The decoded data when every value is a scalar (``_SCALARS``), else None: a read
    then copies this dict instead of decoding each value again (the JSON text above stays
    the truth; this is what decoding it gives)."""
    plain_meta: dict[str, Any] | None
    """The same for ``meta``."""


def _plain(values: dict[str, Any]) -> dict[str, Any] | None:
    """``values`` copied, if every one is a scalar; None otherwise."""
    for value in values.values():
        if not _is_scalar(value):
            return None
    return dict(values)


def _copy_out(entry: _Entry) -> SessionRecord:
    """A fresh record the caller may mutate freely (built directly: this is the hot path)."""
    r = entry.record
    loads = json.loads
    plain = entry.plain
    meta = entry.plain_meta
    return SessionRecord(
        r.key,
        r.handle,
        dict(plain) if plain is not None else {k: loads(v) for k, v in entry.data.items()},
        r.created_at,
        r.last_seen_at,
        r.expires_at,
        r.absolute_at,
        r.user_id,
        r.auth_at,
        r.remember,
        r.user_agent,
        r.ip,
        dict(meta) if meta is not None else loads(entry.meta),
    )


def _read(entry: _Entry | None) -> SessionRecord | None:
    """``_copy_out``, or None (with a warning) for an entry damaged in place: the store
    only ever holds what it was given, but a test or a debugger may poke at it, and a
    record the store hands out must be sound on every store alike."""
    if entry is None:
        return None
    try:
        record = _copy_out(entry)
    except (ValueError, TypeError):
        warn("memory", "data or meta is not JSON text", entry.record.handle)
        return None
    return sound(record, "memory")


def _checked(entry: _Entry, patch: Patch) -> Patch:
    """``patch`` with its operations worked out on the values the entry holds (as plain
    writes), after checking that the data it leaves fits ``max_bytes``; or the error that
    refuses it whole (an operation's type clash, ``SessionTooLarge``)."""
    set_json, set_items = patch.set_json, patch.set_items
    if patch.ops:
        results: dict[str, object] = {}
        for kind, key, arg, _ in patch.ops:
            current = results.get(key, MISSING)
            if current is MISSING and key in entry.data:
                current = json.loads(entry.data[key])
            results[key] = apply_op(kind, key, current, arg)
        set_json = set_json | {k: encode_value(k, v) for k, v in results.items()}
        set_items = set_items | results
    if patch.max_bytes is not None and set_json:
        after = {k: v for k, v in entry.data.items() if k not in patch.removed} | set_json
        size = encoded_bytes(after)
        if size > patch.max_bytes:
            raise SessionTooLarge(size, patch.max_bytes)
    return Patch(set_json, set_items, patch.removed, patch.fields, patch.expect_handle)


class MemoryStore(
    InlineStore,
    InlineHandleIndex,
    InlineUserIndex,
    InlinePurgeable,
    InlineCountable,
    Statistics,
    InlineLockable,
    Scannable,
):
    """In-process store. Nothing survives a restart and nothing is shared between
    processes: use SQLite, PostgreSQL or Redis for that."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._handles: dict[str, str] = {}
        self._users: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._session_locks: dict[str, tuple[str, float]] = {}
        """Per-session locks: key -> (owner, end of its lease)."""

    # index upkeep (caller holds the lock)
    def _index(self, key: str, record: SessionRecord) -> None:
        self._handles[record.handle] = key
        if record.user_id is not None:
            self._users.setdefault(record.user_id, set()).add(key)

    def _unindex(self, key: str, record: SessionRecord) -> None:
        self._handles.pop(record.handle, None)
        if record.user_id is not None:
            keys = self._users.get(record.user_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._users[record.user_id]

    def _remove(self, key: str) -> SessionRecord | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self._unindex(key, entry.record)
        return entry.record

    def get_sync(self, key: str) -> SessionRecord | None:
        with self._lock:
            return _read(self._entries.get(key))

    def scan_sync(self, cursor: str, count: int) -> tuple[list[SessionRecord], str | None]:
        """In the order of the storage keys: the cursor is the last key returned."""
        with self._lock:
            keys = sorted(k for k in self._entries if k > cursor)[:count]
            records = [r for r in (_read(self._entries[k]) for k in keys) if r is not None]
        return records, (keys[-1] if len(keys) == count else None)

    def create_sync(self, record: SessionRecord) -> None:
        data = {k: encode_value(k, v) for k, v in record.data.items()}
        meta = json.dumps(record.meta)
        bare = dataclasses.replace(record, data={}, meta={})
        entry = _Entry(bare, data, meta, _plain(record.data), _plain(record.meta))
        with self._lock:
            self._entries[record.key] = entry
            self._index(record.key, bare)

    def _patch(self, entry: _Entry, patch: Patch) -> None:
        data = entry.data
        if patch.removed:
            plain = entry.plain
            for k in patch.removed:
                data.pop(k, None)
                if plain is not None:
                    plain.pop(k, None)
        set_json = patch.set_json
        if set_json:
            data |= set_json  # (dict.update takes its arguments the slow way)
            plain = entry.plain
            if plain is not None:
                items = patch.set_items
                for k in set_json:
                    value = items.get(k, plain)  # ``plain`` stands for "not given"
                    if value is plain or not _is_scalar(value):
                        entry.plain = None  # decode from the JSON text from now on
                        break
                    plain[k] = value
        record = entry.record
        for name, value in patch.fields.items():
            if name == "meta":
                entry.meta = json.dumps(value)
                entry.plain_meta = _plain(value)
            else:
                setattr(record, name, value)

    def apply_sync(self, key: str, patch: Patch) -> bool:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not patch.fits(entry.record.handle):
                return False
            if patch.ops or patch.max_bytes is not None:
                patch = _checked(entry, patch)  # raises, changing nothing, when refused
            fields = patch.fields
            if "user_id" in fields or "handle" in fields:  # indexed: re-index only then
                self._unindex(key, entry.record)
                self._patch(entry, patch)
                self._index(key, entry.record)
            else:
                self._patch(entry, patch)
            return True

    def rename_sync(self, old_key: str, new_key: str, patch: Patch) -> bool:
        with self._lock:
            entry = self._entries.get(old_key)
            if entry is None or not patch.fits(entry.record.handle):
                return False
            if patch.ops or patch.max_bytes is not None:
                patch = _checked(entry, patch)
            del self._entries[old_key]
            self._unindex(old_key, entry.record)
            self._patch(entry, patch)
            entry.record.key = new_key
            self._entries[new_key] = entry
            self._index(new_key, entry.record)
            return True

    def delete_sync(self, key: str) -> bool:
        with self._lock:
            return self._remove(key) is not None

    def get_by_handle_sync(self, handle: str) -> SessionRecord | None:
        with self._lock:
            key = self._handles.get(handle)
            return _read(self._entries.get(key) if key is not None else None)

    def list_user_sync(self, user_id: str, now: float) -> list[SessionRecord]:
        with self._lock:
            entries = [self._entries[k] for k in self._users.get(user_id, ())]
            records = [_read(e) for e in entries]
        live = [r for r in records if r is not None and r.expires_at > now]
        return sorted(live, key=lambda r: r.created_at)

    def delete_handle_sync(self, handle: str) -> SessionRecord | None:
        with self._lock:
            key = self._handles.get(handle)
            return self._remove(key) if key is not None else None

    def delete_user_sync(self, user_id: str, except_handle: str | None = None) -> int:
        with self._lock:
            keys = [
                k
                for k in self._users.get(user_id, ())
                if self._entries[k].record.handle != except_handle
            ]
            for k in keys:
                self._remove(k)
            return len(keys)

    def purge_expired_sync(self, now: float, batch_size: int) -> int:
        with self._lock:
            expired = [k for k, e in self._entries.items() if e.record.expires_at <= now]
        total = 0
        for start in range(0, len(expired), batch_size):
            with self._lock:  # released between batches so other callers interleave
                for k in expired[start : start + batch_size]:
                    entry = self._entries.get(k)
                    if entry is not None and entry.record.expires_at <= now:
                        self._remove(k)
                        total += 1
        return total

    def count_sync(self, now: float) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.record.expires_at > now)

    def stats_sync(self, now: float, *, top: int = 10, soon: float = 300.0) -> dict[str, Any]:
        """For ``coatcheck stats``: live sessions, those ending within ``soon`` seconds,
        and the ``top`` users by number of live sessions."""
        with self._lock:
            live = [e.record for e in self._entries.values() if e.record.expires_at > now]
        users = Counter(r.user_id for r in live if r.user_id is not None)
        return {
            "active": len(live),
            "expiring_soon": sum(1 for r in live if r.expires_at <= now + soon),
            "top_users": sorted(users.items(), key=lambda item: (-item[1], item[0]))[:top],
        }

    def acquire_lock_sync(self, key: str, owner: str, now: float, lease: float) -> bool:
        """Free, or held past its lease: taken, under the store's own (short) lock, so
        threads and the event loop alike see one holder at a time."""
        with self._lock:
            held = self._session_locks.get(key)
            if held is not None and held[1] > now:
                return False
            self._session_locks[key] = (owner, now + lease)
            return True

    def release_lock_sync(self, key: str, owner: str) -> bool:
        with self._lock:
            held = self._session_locks.get(key)
            if held is None or held[0] != owner:
                return False
            del self._session_locks[key]
            return True
