"""What the memcached store keeps in memcached: item names, JSON documents, expiry times.

Pure functions and constants, no I/O, so the layout described in the package docstring is
written down in one place and the protocol and index code only move bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Iterator
from typing import Any

from coatcheck.core.record import PATCHABLE_FIELDS, Patch, SessionRecord, damage

DAY = 24 * 60 * 60
RELATIVE_LIMIT = 30 * DAY
"""Memcached reads an expiry up to this many seconds as relative, beyond as a unix time."""

DEFAULT_MAX_TTL = 366 * DAY
TOMBSTONE_TTL = 60
"""A tombstone is deleted at the end of its rename; this only bounds an interrupted one."""
EMPTY_INDEX_TTL = 60
INDEX_GRACE = 60.0
"""Seconds past an entry's absolute deadline before a write drops it (covers clock skew
and the one-second minimum expiry of a record written after its deadline)."""
REGISTRY_DIGITS = 3
"""Registry buckets are named by the first hex digits of the key: 16**3 = 4096 buckets."""
FETCH_CHUNK = 256
"""Keys per multi-get request."""
NAME_PART = re.compile(r"[A-Za-z0-9_-]{1,128}")
"""What a storage key or a handle looks like. Anything else (a handle typed into a revoke
form, say) names no session: it is answered as unknown instead of reaching memcached,
whose item names may not hold spaces or control characters."""
FORMAT = 1

RECORD_FIELDS = (
    "handle",
    "user_id",
    "data",
    "created_at",
    "last_seen_at",
    "expires_at",
    "absolute_at",
    "auth_at",
    "remember",
    "user_agent",
    "ip",
    "meta",
)
_NUMBERS = ("created_at", "last_seen_at", "expires_at", "absolute_at")

Doc = dict[str, Any]
Entries = list[list[Any]]
"""An index item's value: entries that each end with an absolute deadline."""


class Names:
    """Item names under one prefix (see the package docstring for the layout)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def record(self, key: str) -> str:
        return f"{self.prefix}s:{key}"

    def handle(self, handle: str) -> str:
        return f"{self.prefix}h:{handle}"

    def user(self, user_id: str) -> str:
        # Hashed: a user id may hold spaces, non-ASCII or be long; item names may not.
        return f"{self.prefix}u:{hashlib.sha256(user_id.encode()).hexdigest()}"

    def lock(self, key: str) -> str:
        return f"{self.prefix}l:{key}"

    def bucket(self, key: str) -> str:
        return f"{self.prefix}r:{key[:REGISTRY_DIGITS]}"

    def all_buckets(self) -> list[str]:
        return [f"{self.prefix}r:{n:0{REGISTRY_DIGITS}x}" for n in range(16**REGISTRY_DIGITS)]


def exptime(deadline: float, max_ttl: float) -> int:
    """Memcached expiry for an item that must live until ``deadline`` (unix time)."""
    now = time.time()
    until = min(max(deadline, now + 1.0), now + max_ttl)
    # Memcached adds a relative expiry to its own clock, which ticks once a second
    # and may lag by up to a second: one more second keeps the item until the
    # deadline. An absolute expiry is compared with that lagging clock, so it is late
    # rather than early.
    seconds = math.ceil(until - now) + 1
    if seconds <= RELATIVE_LIMIT:
        return seconds
    return math.ceil(until)


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def to_doc(record: SessionRecord) -> Doc:
    doc: Doc = {"v": FORMAT}
    for name in RECORD_FIELDS:
        doc[name] = getattr(record, name)
    return doc


def tombstone(new_key: str) -> bytes:
    """What a renamed record's old item holds until the rename ends."""
    return dumps({"v": FORMAT, "moved_to": new_key})


def read_doc(raw: bytes) -> Doc | str:
    """The document of a record's item (a record or a rename tombstone), or why the item
    is not one the store wrote (damaged outside it: not JSON, a field missing or of the
    wrong type), which every reader treats as no record."""
    try:
        doc = json.loads(raw)
    except ValueError:  # (a UnicodeDecodeError is one)
        return "not JSON"
    if not isinstance(doc, dict):
        return "not a JSON object"
    if "moved_to" in doc:
        moved_to = doc["moved_to"]
        if isinstance(moved_to, str) and NAME_PART.fullmatch(moved_to):
            return doc
        return "moved_to is not a key"
    for name in RECORD_FIELDS:
        if name not in doc:
            return f"{name} is missing"
    reason = damage(to_record("-", doc))
    return doc if reason is None else f"{reason} is not what coatcheck writes"


def live_doc(raw: bytes) -> Doc | None:
    """A record's document; None for a tombstone or an item damaged outside the store
    (``read_doc``), which counts as no record: a fresh session, as for an unknown token,
    rather than an error for as long as the item lives."""
    doc = read_doc(raw)
    if isinstance(doc, str) or "moved_to" in doc:
        return None
    return doc


def read_entries(raw: bytes) -> Entries | None:
    """An index item's entries (each a list that starts with a key or a handle and ends
    with a deadline), or None when the item is not one the store wrote."""
    try:
        entries = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if (
            not isinstance(entry, list)
            or len(entry) < 2
            or not isinstance(entry[0], str)
            or not NAME_PART.fullmatch(entry[0])
            or type(entry[-1]) not in (int, float)
            or not math.isfinite(entry[-1])
        ):
            return None
    return entries


def to_record(key: str, doc: Doc) -> SessionRecord:
    return SessionRecord(key=key, **{name: doc[name] for name in RECORD_FIELDS})


def patched(doc: Doc, patch: Patch) -> Doc:
    """A copy of ``doc`` with ``patch`` applied (the reference semantics of Patch: its
    atomic operations and its size limit too, raising the error that refuses it)."""
    new = dict(doc)
    new["data"] = patch.new_data(doc["data"]) if patch.touches_data else dict(doc["data"])
    for name, value in patch.fields.items():
        if name not in PATCHABLE_FIELDS:
            raise ValueError(f"field {name!r} cannot be patched")
        new[name] = value
    return new


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
