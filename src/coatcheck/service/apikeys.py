"""API keys: who may call the service, and for what.

A key is 256 random bits (``cc_`` and 43 base64url characters; the prefix lets secret
scanners recognise a leaked one). Only its SHA-256 is kept, in the reserved record
``api-keys`` of the session store, so every node sees the same keys and a copy of the store
holds nothing a caller could present. A presented key is hashed and compared with every
stored hash by ``hmac.compare_digest``, without stopping at the first match, so the time
taken says nothing about which key, or how much of one, matched.

Scopes: ``introspect`` (introspect a token, turn it into a JWT), ``sessions`` (everything on
one end user's session, by its token), ``admin`` (everything, including any user's sessions
by user id or handle).

The procedures (``create``, ``revoke``, ``listing``) are steps, driven by the command line
with the store's sync methods and by the server with its async ones. ``KeyChecker`` is the
server's per-process view: it rereads the keys at most every ``api_key_cache`` seconds, and
at once (at most once a second) when a key it does not know is presented, so a new key
works at once and a revoked one stops within the cache time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from coatcheck.engine.operations import Steps, run_async
from coatcheck.errors import CoatcheckError
from coatcheck.service import reserved
from coatcheck.stores.base import Store

SCOPES: Final = ("introspect", "sessions", "admin")
KEY_PREFIX: Final = "cc_"
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_PRESENTED: Final = 128
"""Longer credentials are refused before hashing: no key is that long."""
ENTRY: Final = "key:"
USED: Final = "used:"
"""Data keys of the record: ``key:<name>`` holds the hash, scopes and creation time;
``used:<name>`` the last use, written apart so a use never rewrites the key itself."""
USE_WRITE_INTERVAL: Final = 60.0
MISS_REFRESH: Final = 1.0

IMPLIED: Final = {
    "introspect": frozenset({"introspect", "sessions", "admin"}),
    "sessions": frozenset({"sessions", "admin"}),
    "admin": frozenset({"admin"}),
}
"""For each scope a call needs, the key scopes that grant it."""


class ApiKeyError(CoatcheckError, ValueError):
    """An operator's mistake with a key (a taken or unknown name, an unknown scope)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key as listed: never the key itself."""

    name: str
    scopes: frozenset[str]
    created_at: float
    last_used_at: float | None
    digest: str

    def grants(self, needed: str) -> bool:
        return not self.scopes.isdisjoint(IMPLIED[needed])


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def parse(data: dict[str, Any]) -> dict[str, ApiKey]:
    """The keys in the record's data, by name; malformed entries are ignored."""
    keys: dict[str, ApiKey] = {}
    for field, entry in data.items():
        if not field.startswith(ENTRY) or not isinstance(entry, dict):
            continue
        name = field[len(ENTRY) :]
        scopes = entry.get("scopes")
        hashed = entry.get("sha256")
        created = entry.get("created_at")
        if not (isinstance(scopes, list) and isinstance(hashed, str)):
            continue
        used = data.get(USED + name)
        keys[name] = ApiKey(
            name=name,
            scopes=frozenset(s for s in scopes if s in SCOPES),
            created_at=float(created) if isinstance(created, (int, float)) else 0.0,
            last_used_at=float(used) if isinstance(used, (int, float)) else None,
            digest=hashed,
        )
    return keys


def check_name(name: str) -> str:
    if NAME_PATTERN.fullmatch(name) is None:
        raise ApiKeyError(
            f"invalid key name {name!r}: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes))
    if not chosen:
        raise ApiKeyError("give at least one --scope")
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise ApiKeyError(f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}")
    return chosen


def listing() -> Steps[list[ApiKey]]:
    data = yield from reserved.read(reserved.API_KEYS)
    return sorted(parse(data).values(), key=lambda k: (k.created_at, k.name))


def create(name: str, scopes: Iterable[str], now: float) -> Steps[str]:
    """A new key ``name`` with ``scopes``; returns the key, which exists nowhere else."""
    check_name(name)
    chosen = check_scopes(scopes)
    data = yield from reserved.read(reserved.API_KEYS)
    if name in parse(data):
        raise ApiKeyError(f"a key named {name!r} exists already; revoke it first")
    key = new_key()
    entry = {"sha256": digest(key), "scopes": chosen, "created_at": now}
    stale = frozenset({USED + name})  # a last use noted for an earlier key of this name
    yield from reserved.merge(reserved.API_KEYS, {ENTRY + name: entry}, now, removed=stale)
    return key


def create_first(now: float) -> Steps[str | None]:
    """On a store with no key at all, an ``admin`` key (returned); None otherwise."""
    data = yield from reserved.read(reserved.API_KEYS)
    if parse(data):
        return None
    return (yield from create("admin", ["admin"], now))


def revoke(name: str, now: float) -> Steps[None]:
    data = yield from reserved.read(reserved.API_KEYS)
    if name not in parse(data):
        raise ApiKeyError(f"no key named {name!r}")
    gone = frozenset({ENTRY + name, USED + name})
    yield from reserved.merge(reserved.API_KEYS, {}, now, removed=gone)


def match(keys: Iterable[ApiKey], presented: str) -> ApiKey | None:
    """The key whose hash is the presented key's, comparing with every stored hash."""
    if len(presented) > MAX_PRESENTED:
        return None
    wanted = digest(presented).encode()
    found: ApiKey | None = None
    for key in keys:
        if hmac.compare_digest(key.digest.encode(), wanted):
            found = key
    return found


class KeyChecker:
    """The server's view of the keys: cached, refreshed, and last uses written back."""

    def __init__(self, store: Store, clock: Callable[[], float], cache_seconds: float) -> None:
        self.store = store
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._keys: list[ApiKey] = []
        self._loaded_at: float | None = None
        self._written: dict[str, float] = {}

    async def _refresh(self, now: float) -> None:
        data = await run_async(reserved.read(reserved.API_KEYS), self.store)
        self._keys = list(parse(data).values())
        self._loaded_at = now

    async def authenticate(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, or None. Raises StoreUnavailable when the keys must be
        read and the store does not answer."""
        now = self.clock()
        loaded = self._loaded_at
        if loaded is None or now - loaded >= self.cache_seconds:
            await self._refresh(now)
            loaded = now
        key = match(self._keys, presented)
        if key is None and now - loaded >= MISS_REFRESH and len(presented) <= MAX_PRESENTED:
            await self._refresh(now)
            key = match(self._keys, presented)
        if key is not None:
            await self._note_use(key, now)
        return key

    async def named(self, name: str) -> ApiKey | None:
        """The key called ``name`` as this node last read the keys (refreshed as
        ``authenticate`` does): an admin session asks on each request whether its key
        still exists, so revoking the key ends the session within the cache time."""
        now = self.clock()
        if self._loaded_at is None or now - self._loaded_at >= self.cache_seconds:
            await self._refresh(now)
        return next((key for key in self._keys if key.name == name), None)

    async def _note_use(self, key: ApiKey, now: float) -> None:
        last = self._written.get(key.name, key.last_used_at)
        if last is not None and now - last < USE_WRITE_INTERVAL:
            return
        self._written[key.name] = now
        steps = reserved.merge(reserved.API_KEYS, {USED + key.name: now}, now)
        await run_async(steps, self.store)
