"""MemcachedStore: sessions in memcached, expiring natively, indexes kept with compare-and-set.

What a cache cannot promise
---------------------------
Memcached is a cache: it may drop any item at any moment, and this store cannot hide that.

- **Sessions may vanish.** Under memory pressure memcached evicts least-recently-used items;
  an evicted session looks exactly like an unknown token, so its user is logged out and
  its data (a cart, say) is lost. The manager then hands out a fresh anonymous session: no
  error, no 503. Size the cache (``-m``) well above the working set and watch its
  ``evictions`` counter.
- **Indexes may miss sessions.** The per-user index and the handle index are items too and
  can be evicted on their own. Then "your devices" lists fewer sessions than exist, and
  ``revoke`` / ``revoke_user`` ("log out everywhere") cannot reach the sessions the index
  forgot: they stay valid until their own deadline. Applications that must guarantee
  revocation should use the Redis or PostgreSQL store.
- **Nothing survives a restart** of the memcached process, and nothing is replicated: a
  restart or a lost node logs out every user whose session lived there.
- **Expired sessions look unknown.** Memcached drops an item at its deadline, so the
  manager sees "unknown" rather than "idle expired" for most expired sessions.

Layout (every name starts with the configurable ``prefix``)
----------------------------------------------------------
- ``s:<key>``: the record, one JSON value; ``<key>`` is SHA-256 of the token, never the
  token. Its memcached expiry is its deadline (``expires_at``), so memcached expires it
  itself. The record's own ``expires_at`` stays authoritative for validity: the item lives
  at least until then (rounded up, plus a second for memcached's coarse clock) and the
  policy rejects it afterwards.
- ``h:<handle>``: the storage key that currently holds this handle.
- ``u:<sha256(user_id)>``: the user's index, a JSON list of ``[key, handle, absolute_at]``.
- ``r:<first 3 hex digits of key>``: one of 4096 registry buckets, ``[key, absolute_at]``
  lists through which ``purge_expired`` and ``count`` reach every session (memcached
  cannot enumerate its keys portably). Sharding keeps each bucket small (about 20 KB at a
  million sessions) and spreads contention.

Index entries carry the session's *absolute* deadline, not the idle one: it is the bound
that never moves when a session is touched, so a touch costs no index write. Each index
item expires with the latest absolute deadline it lists, every write drops the entries
whose absolute deadline has passed, and reads drop entries whose record is missing,
renamed or now belongs to someone else: indexes stay bounded without expiry
notifications. The registry is pruned by ``purge_expired``; run it periodically (as for
the SQL stores) to keep the buckets compact.

Expiry times: memcached reads an expiry of up to 30 days as relative seconds and a larger
one as an absolute unix time. The store computes ``max(1, deadline - time.time())``
seconds, capped at ``max_ttl`` (a year by default, so a clock far in the future cannot pin
items for ever), and sends it as relative seconds (rounded up, plus one) when that is at
most 30 days and as an absolute time otherwise. Expiry thus follows the wall clock of this
host and of memcached; a manager with an injected clock ahead of the wall clock only makes
items live longer, one behind it makes them vanish early (as if evicted).

Atomicity
---------
Each record is one item, so ``apply`` is a ``gets`` + ``cas`` loop: read the record and
its CAS token, apply the patch in memory, write it back only if nobody wrote in between,
otherwise read again. There is no sleep: a loser retries at once and at least one writer
wins each round, so N concurrent writers finish within N attempts; the loop gives up
(StoreUnavailable) after ``max_cas_attempts``. A ``cas`` that finds no item returns False:
a commit never resurrects a session that was revoked, purged or evicted meanwhile.

``rename`` cannot be one operation across two keys. It writes the patched record under the
new key, then replaces the old record with a tombstone (``{"moved_to": new_key}``) by
``cas``; if any other write reached the old record in between, the ``cas`` fails, the new
copy is deleted and the rename starts again from fresh state, so no concurrent write is
lost. Afterwards the handle is re-pointed and the tombstone deleted. The window: between
writing the new copy and the tombstone ``cas`` (one round trip) the session exists under
both keys; the new key is known to nobody yet, and ``list_user`` shows one entry per
handle. Readers that meet the tombstone (``get_by_handle``, ``delete_handle``) follow it;
``get``, ``apply`` and ``rename`` of the old key find nothing.

Index writes come before the record write they describe and index removals after, so an
index is a superset of the truth (except for evictions): a session being created or
renamed for a user is always reachable by "log out everywhere".

Clients
-------
The sync path uses pymemcache over a small bounded pool of connections. The async path
runs the same code on a dedicated thread pool of the same size (``run_in_executor``)
rather than on a native asyncio client. The two maintained asyncio clients with gets/cas
were tried against a real memcached and rejected: aiomcache 0.8 spins forever without
yielding (blocking the whole event loop, so no timeout can fire) when the server closes
the connection in the middle of a storage command; emcache 1.3 does not report connection
failures to waiting callers, so during an outage every operation waits its full timeout,
and it reconnects with an exponential backoff of up to 60 s, so traffic recovered 4 s
after a 4 s outage. pymemcache fails at once on a refused connection and reconnects on the
next call. The price is the thread hop: on a 2-core machine against a loopback memcached,
``get`` took about 130 us on the sync path and 300 us on the async one (``apply``: 290
and 510 us). A sound async client would save that hop; swapping one in later changes
nothing else here.

Timeouts: ``connect_timeout`` bounds connecting, ``timeout`` each send and receive, and
a caller waits at most ``connect_timeout + timeout`` for a free connection. Every memcached
error, refused connection or timeout is raised as StoreUnavailable, so the edge answers 503.
A connection found dead on reuse (memcached restarted) is replaced and the call retried
once, so traffic recovers on the first request after a restart.

Round trips: ``get`` 1; ``apply`` (update or touch) 2; ``create`` 4 (6 for a logged-in
user); ``delete`` 4 (6 for a logged-in user); ``rename`` 9 (login) to 11 (regenerate).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, urlsplit

from pymemcache.client.base import Client  # type: ignore[import-untyped]
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheError,
    MemcacheUnexpectedCloseError,
)

from coatcheck.core.record import PATCHABLE_FIELDS, Patch, SessionRecord
from coatcheck.errors import StoreUnavailable
from coatcheck.stores.base import Store, process_id

T = TypeVar("T")
P = ParamSpec("P")

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
_NAME_PART = re.compile(r"[A-Za-z0-9_-]{1,128}")
"""What a storage key or a handle looks like. Anything else (a handle typed into a revoke
form, say) names no session: it is answered as unknown instead of reaching memcached,
whose item names may not hold spaces or control characters."""
FORMAT = 1

_STALE_CONNECTION = (
    MemcacheUnexpectedCloseError,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)
"""Errors that mean a pooled connection died while idle (memcached restarted)."""

_RECORD_FIELDS = (
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

Doc = dict[str, Any]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _to_doc(record: SessionRecord) -> Doc:
    doc: Doc = {"v": FORMAT}
    for name in _RECORD_FIELDS:
        doc[name] = getattr(record, name)
    return doc


_NUMBERS = ("created_at", "last_seen_at", "expires_at", "absolute_at")


def _live_doc(raw: bytes) -> Doc | None:
    """A record's document; None for a tombstone or an item damaged outside the store
    (not JSON, fields missing or of the wrong type), which counts as no record: a fresh
    session, as for an unknown token, rather than an error for as long as the item lives."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "moved_to" in doc:
        return None
    if not all(name in doc for name in _RECORD_FIELDS) or not isinstance(doc["data"], dict):
        return None
    if not all(isinstance(doc[n], int | float) for n in _NUMBERS):
        return None
    return doc


def _to_record(key: str, doc: Doc) -> SessionRecord:
    return SessionRecord(key=key, **{name: doc[name] for name in _RECORD_FIELDS})


def _patched(doc: Doc, patch: Patch) -> Doc:
    """A copy of ``doc`` with ``patch`` applied (the reference semantics of model.Patch)."""
    new = dict(doc)
    data = dict(doc["data"])
    for name in patch.removed:
        data.pop(name, None)
    for name, text in patch.set_json.items():
        data[name] = json.loads(text)
    new["data"] = data
    for name, value in patch.fields.items():
        if name not in PATCHABLE_FIELDS:
            raise ValueError(f"field {name!r} cannot be patched")
        new[name] = value
    return new


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Connections:
    """A bounded, thread-safe pool of pymemcache clients.

    pymemcache's own PooledClient raises when its limit is reached instead of waiting, and
    retries nothing; this pool makes callers wait (boundedly) for a connection and replaces
    connections that died while idle.
    """

    def __init__(
        self, server: tuple[str, int], size: int, connect_timeout: float, timeout: float
    ) -> None:
        self.server = server
        self.size = size
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False
        self._pid = process_id()

    def _after_fork(self) -> None:
        """A child process (a pre-forking server's worker) must never talk on sockets it
        inherited: its parent reads replies from them too, and a reply read by the wrong
        process is another user's session. The child drops them unclosed and opens its
        own."""
        with self._lock:
            if self._pid != process_id():
                self._idle = []
                self._slots = threading.BoundedSemaphore(self.size)
                self._pid = process_id()

    def _new(self) -> Any:
        return Client(
            self.server,
            connect_timeout=self.connect_timeout,
            timeout=self.timeout,
            no_delay=True,
            default_noreply=False,
        )

    def _take(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new()

    def _give_back(self, client: Any) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(client)
                return
        client.close()

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()

    def run(self, operation: Callable[[Any], T]) -> T:
        """Run ``operation(client)``; every failure of memcached is StoreUnavailable."""
        where = f"memcached {self.server[0]}:{self.server[1]}"
        if self._pid != process_id():
            self._after_fork()
        slots = self._slots
        if not slots.acquire(timeout=self.connect_timeout + self.timeout):
            raise StoreUnavailable(f"{where}: all {self.size} connections stayed busy")
        try:
            client = self._take()
            try:
                try:
                    result = operation(client)
                except _STALE_CONNECTION:
                    # Memcached restarted since this connection was last used: the other
                    # idle connections are dead too. Retry once on a fresh connection.
                    client.close()
                    self._drop_idle()
                    client = self._new()
                    result = operation(client)
            except (MemcacheError, OSError) as exc:
                client.close()
                raise StoreUnavailable(f"{where}: {type(exc).__name__}: {exc}") from exc
            except BaseException:
                client.close()
                raise
            self._give_back(client)
            return result
        finally:
            slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._drop_idle()


class MemcachedStore(Store):
    """Sessions in one memcached server (see the module docstring for what that means).

    ``prefix`` namespaces every item name, so several applications (or test runs) can share
    a server. ``timeout`` and ``connect_timeout`` are in seconds; ``pool_size`` bounds the
    connections and the threads that serve the async methods.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11211,
        *,
        prefix: str = "coatcheck:",
        timeout: float = 1.0,
        connect_timeout: float = 1.0,
        pool_size: int = 10,
        max_ttl: float = DEFAULT_MAX_TTL,
        max_cas_attempts: int = 256,
    ) -> None:
        if len(prefix) > 100 or any(c.isspace() or ord(c) < 33 or ord(c) > 126 for c in prefix):
            raise ValueError(
                f"memcached prefix must be at most 100 printable ASCII characters without "
                f"spaces, got {prefix!r}"
            )
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("memcached timeouts must be positive")
        if pool_size < 1:
            raise ValueError("memcached pool_size must be at least 1")
        if max_ttl < 1 or max_cas_attempts < 1:
            raise ValueError("max_ttl and max_cas_attempts must be at least 1")
        self.prefix = prefix
        self.host, self.port = host, port
        self.timeout, self.connect_timeout, self.pool_size = timeout, connect_timeout, pool_size
        self.max_ttl = max_ttl
        self.max_cas_attempts = max_cas_attempts
        self._pool = _Connections((host, port), pool_size, connect_timeout, timeout)
        self._executor = self._new_executor()
        self._executor_pid = process_id()

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(
            max_workers=self.pool_size, thread_name_prefix="coatcheck-memcached"
        )

    # -- names and expiry --------------------------------------------------------------
    def _record_name(self, key: str) -> str:
        return f"{self.prefix}s:{key}"

    def _handle_name(self, handle: str) -> str:
        return f"{self.prefix}h:{handle}"

    def _user_name(self, user_id: str) -> str:
        # Hashed: a user id may hold spaces, non-ASCII or be long; item names may not.
        return f"{self.prefix}u:{hashlib.sha256(user_id.encode()).hexdigest()}"

    def _bucket_name(self, key: str) -> str:
        return f"{self.prefix}r:{key[:REGISTRY_DIGITS]}"

    def _all_bucket_names(self) -> list[str]:
        return [f"{self.prefix}r:{n:0{REGISTRY_DIGITS}x}" for n in range(16**REGISTRY_DIGITS)]

    def _exptime(self, deadline: float) -> int:
        """Memcached expiry for an item that must live until ``deadline`` (unix time)."""
        now = time.time()
        until = min(max(deadline, now + 1.0), now + self.max_ttl)
        # Memcached adds a relative expiry to its own clock, which ticks once a second
        # and may lag by up to a second: one more second keeps the item until the
        # deadline. An absolute expiry is compared with that lagging clock, so it is late
        # rather than early.
        seconds = math.ceil(until - now) + 1
        if seconds <= RELATIVE_LIMIT:
            return seconds
        return math.ceil(until)

    # -- raw item access ---------------------------------------------------------------
    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One pymemcache call on a pooled connection (pymemcache is untyped: Any)."""
        return self._pool.run(lambda client: getattr(client, method)(*args, **kwargs))

    @staticmethod
    def _decode(raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError as exc:
            # Not named: a record's name holds a token's SHA-256, and messages reach logs.
            raise StoreUnavailable("a memcached item is not coatcheck JSON") from exc

    def _load_doc(self, key: str) -> Doc | None:
        """The record's document, a tombstone document, or None."""
        name = self._record_name(key)
        raw = self._call("get", name)
        return None if raw is None else self._decode(raw)

    def _load_docs(self, keys: Iterable[str]) -> dict[str, Doc]:
        """Documents of the given keys that exist (tombstones included)."""
        names = {self._record_name(k): k for k in keys}
        found: dict[str, Doc] = {}
        for chunk in _chunks(list(names), FETCH_CHUNK):
            values = self._call("get_many", chunk)
            for name, raw in values.items():
                found[names[name]] = self._decode(raw)
        return found

    def _delete_item(self, name: str) -> bool:
        return bool(self._call("delete", name))

    def _follow(self, key: str) -> tuple[str, Doc] | None:
        """The live record under ``key``, following one rename tombstone."""
        doc = self._load_doc(key)
        if doc is not None and "moved_to" in doc:
            key = doc["moved_to"]
            doc = self._load_doc(key)
        if doc is None or "moved_to" in doc:
            return None
        return key, doc

    # -- indexes -----------------------------------------------------------------------
    def _update_index(
        self, name: str, change: Callable[[list[list[Any]]], list[list[Any]]]
    ) -> None:
        """Rewrite the JSON list under ``name`` with ``change`` in a gets/cas loop.

        Entries end with their absolute deadline; the ones past it are dropped on every
        write, and the item expires with the latest deadline it still lists.
        """
        for _ in range(self.max_cas_attempts):
            raw, token = self._call("gets", name)
            current: list[list[Any]] = [] if raw is None else self._decode(raw)
            horizon = time.time() - INDEX_GRACE
            wanted = [e for e in change(list(current)) if e[-1] > horizon]
            if raw is not None and wanted == current:
                return
            if raw is None and not wanted:
                return
            value = _dumps(wanted)
            exptime = self._exptime(max(e[-1] for e in wanted)) if wanted else EMPTY_INDEX_TTL
            if raw is None:
                if self._call("add", name, value, expire=exptime):
                    return
            elif self._call("cas", name, value, token, expire=exptime):
                return
        raise StoreUnavailable(f"memcached index {name!r}: too much write contention")

    def _upsert(self, name: str, entry: list[Any]) -> None:
        def change(entries: list[list[Any]]) -> list[list[Any]]:
            for i, existing in enumerate(entries):
                if existing[0] == entry[0]:
                    entries[i] = entry
                    return entries
            return [*entries, entry]

        self._update_index(name, change)

    def _remove(self, name: str, keys: set[str]) -> None:
        if keys:
            self._update_index(name, lambda entries: [e for e in entries if e[0] not in keys])

    def _index_user(self, key: str, doc: Doc) -> None:
        if doc["user_id"] is not None:
            entry = [key, doc["handle"], doc["absolute_at"]]
            self._upsert(self._user_name(doc["user_id"]), entry)

    def _register(self, key: str, doc: Doc) -> None:
        self._upsert(self._bucket_name(key), [key, doc["absolute_at"]])

    def _point_handle(self, key: str, doc: Doc) -> None:
        name = self._handle_name(doc["handle"])
        value = key.encode()
        exptime = self._exptime(doc["absolute_at"])
        self._call("set", name, value, expire=exptime)

    def _drop_handle(self, handle: str, key: str) -> None:
        """Delete the handle entry if it still names ``key`` (a rename may have moved it)."""
        name = self._handle_name(handle)
        if self._call("get", name) == key.encode():
            self._delete_item(name)

    def _delete_record(self, key: str, doc: Doc) -> bool:
        """Delete a record and its handle and user entries (the registry entry is
        pruned by purge_expired)."""
        deleted = self._delete_item(self._record_name(key))
        self._drop_handle(doc["handle"], key)
        if doc["user_id"] is not None:
            self._remove(self._user_name(doc["user_id"]), {key})
        return deleted

    # -- contract: sync path -----------------------------------------------------------
    def get_sync(self, key: str) -> SessionRecord | None:
        if not _NAME_PART.fullmatch(key):
            return None
        raw = self._call("get", self._record_name(key))
        doc = None if raw is None else _live_doc(raw)
        return None if doc is None else _to_record(key, doc)

    def create_sync(self, record: SessionRecord) -> None:
        if not (_NAME_PART.fullmatch(record.key) and _NAME_PART.fullmatch(record.handle)):
            raise ValueError("record key and handle must be URL-safe base64 or hex")
        doc = _to_doc(record)
        value = _dumps(doc)  # fails before any write if the record is not JSON
        self._register(record.key, doc)
        self._index_user(record.key, doc)
        self._point_handle(record.key, doc)
        name = self._record_name(record.key)
        exptime = self._exptime(record.expires_at)
        self._call("set", name, value, expire=exptime)

    def apply_sync(self, key: str, patch: Patch) -> bool:
        if not _NAME_PART.fullmatch(key):
            return False
        name = self._record_name(key)
        indexed: set[tuple[Any, Any]] = set()
        for _ in range(self.max_cas_attempts):
            raw, token = self._call("gets", name)
            if raw is None:
                return False
            doc = _live_doc(raw)
            if doc is None or not patch.fits(doc["handle"]):
                return False
            new = _patched(doc, patch)
            moved = (new["user_id"], new["absolute_at"]) != (doc["user_id"], doc["absolute_at"])
            if moved and (new["user_id"], new["absolute_at"]) not in indexed:
                # Index first: the new owner's index must never miss this session.
                self._index_user(key, new)
                self._register(key, new)
                indexed.add((new["user_id"], new["absolute_at"]))
            value = _dumps(new)
            exptime = self._exptime(new["expires_at"])
            stored = self._call("cas", name, value, token, expire=exptime)
            if stored is None:
                return False  # deleted meanwhile: never resurrect
            if stored:
                break
        else:
            raise StoreUnavailable("memcached record: too much write contention")
        if moved:
            if doc["user_id"] is not None and doc["user_id"] != new["user_id"]:
                self._remove(self._user_name(doc["user_id"]), {key})
            self._point_handle(key, new)
        return True

    def rename_sync(self, old_key: str, new_key: str, patch: Patch) -> bool:
        if not _NAME_PART.fullmatch(new_key):
            raise ValueError("the new key must be URL-safe base64 or hex")
        if not _NAME_PART.fullmatch(old_key):
            return False
        old_name, new_name = self._record_name(old_key), self._record_name(new_key)
        indexed: set[tuple[Any, Any]] = set()
        for _ in range(self.max_cas_attempts):
            raw, token = self._call("gets", old_name)
            if raw is None:
                return False
            doc = _live_doc(raw)
            if doc is None or not patch.fits(doc["handle"]):
                return False
            new = _patched(doc, patch)
            if (new["user_id"], new["absolute_at"]) not in indexed:
                self._index_user(new_key, new)
                self._register(new_key, new)
                indexed.add((new["user_id"], new["absolute_at"]))
            value = _dumps(new)
            exptime = self._exptime(new["expires_at"])
            self._call("set", new_name, value, expire=exptime)
            tombstone = _dumps({"v": FORMAT, "moved_to": new_key})
            moved = self._call("cas", old_name, tombstone, token, expire=TOMBSTONE_TTL)
            if moved:
                break
            # The old record changed (or vanished) after we read it: undo and start again.
            self._delete_item(new_name)
            if moved is None:
                return False
        else:
            self._delete_item(new_name)
            raise StoreUnavailable("memcached record: too much write contention")
        self._point_handle(new_key, new)
        if doc["user_id"] is not None:
            self._remove(self._user_name(doc["user_id"]), {old_key})
        self._delete_item(old_name)
        return True

    def delete_sync(self, key: str) -> bool:
        if not _NAME_PART.fullmatch(key):
            return False
        doc = self._load_doc(key)
        if doc is None:
            return False
        if "moved_to" in doc:
            self._delete_item(self._record_name(key))
            return False
        return self._delete_record(key, doc)

    def get_by_handle_sync(self, handle: str) -> SessionRecord | None:
        if not _NAME_PART.fullmatch(handle):
            return None
        name = self._handle_name(handle)
        raw = self._call("get", name)
        if raw is None:
            return None
        found = self._follow(raw.decode())
        if found is None or found[1]["handle"] != handle:
            return None
        return _to_record(*found)

    def list_user_sync(self, user_id: str, now: float) -> list[SessionRecord]:
        name = self._user_name(user_id)
        raw = self._call("get", name)
        if raw is None:
            return []
        entries: list[list[Any]] = self._decode(raw)
        docs = self._load_docs(e[0] for e in entries)
        by_handle: dict[str, SessionRecord] = {}
        dead: set[str] = set()
        for key, *_ in entries:
            doc = docs.get(key)
            if doc is None or "moved_to" in doc or doc["user_id"] != user_id:
                dead.add(key)
            elif doc["expires_at"] <= now:
                dead.add(key)  # expired sessions never come back: forget them
            else:
                by_handle[doc["handle"]] = _to_record(key, doc)  # later entry wins (rename)
        if dead:
            self._remove(name, dead)
        return sorted(by_handle.values(), key=lambda r: r.created_at)

    def delete_handle_sync(self, handle: str) -> SessionRecord | None:
        if not _NAME_PART.fullmatch(handle):
            return None
        name = self._handle_name(handle)
        raw = self._call("get", name)
        if raw is None:
            return None
        found = self._follow(raw.decode())
        if found is None or found[1]["handle"] != handle:
            self._drop_handle(handle, raw.decode())
            return None
        key, doc = found
        return _to_record(key, doc) if self._delete_record(key, doc) else None

    def delete_user_sync(self, user_id: str, except_handle: str | None = None) -> int:
        name = self._user_name(user_id)
        raw = self._call("get", name)
        if raw is None:
            return 0
        entries: list[list[Any]] = self._decode(raw)
        docs = self._load_docs(e[0] for e in entries)
        deleted = 0
        gone: set[str] = set()
        for key, *_ in entries:
            doc = docs.get(key)
            if doc is None or "moved_to" in doc or doc["user_id"] != user_id:
                gone.add(key)
                continue
            if doc["handle"] == except_handle:
                continue
            if self._delete_item(self._record_name(key)):
                deleted += 1
            self._drop_handle(doc["handle"], key)
            gone.add(key)
        self._remove(name, gone)
        return deleted

    def _registered(self) -> Iterator[tuple[str, list[list[Any]]]]:
        """Every non-empty registry bucket: (item name, entries)."""
        for chunk in _chunks(self._all_bucket_names(), FETCH_CHUNK):
            values = self._call("get_many", chunk)
            for name in chunk:
                if name in values:
                    entries = self._decode(values[name])
                    if entries:
                        yield name, entries

    def purge_expired_sync(self, now: float, batch_size: int) -> int:
        """Delete records whose deadline is at or before ``now``.

        Memcached drops items at their deadline by itself; this sweep exists because the
        manager's clock (``now``) is authoritative, and to prune the registry and the user
        indexes of sessions that memcached already dropped. Records are read and deleted
        ``batch_size`` at a time; memcached never blocks readers for any of it.
        """
        total = 0
        for bucket, entries in self._registered():
            keys = [e[0] for e in entries]
            dead: set[str] = set()
            for batch in _chunks(keys, max(1, batch_size)):
                docs = self._load_docs(batch)
                by_user: dict[str, set[str]] = {}
                for key in batch:
                    doc = docs.get(key)
                    if doc is None or "moved_to" in doc:
                        dead.add(key)
                    elif doc["expires_at"] <= now:
                        dead.add(key)
                        if self._delete_item(self._record_name(key)):
                            total += 1
                        self._drop_handle(doc["handle"], key)
                        if doc["user_id"] is not None:
                            by_user.setdefault(doc["user_id"], set()).add(key)
                for user_id, user_keys in by_user.items():
                    self._remove(self._user_name(user_id), user_keys)
            self._remove(bucket, dead)
        return total

    def count_sync(self, now: float) -> int:
        """Live records reachable through the registry (one pass over 4096 buckets and
        the records they list; a registry bucket lost to eviction makes this undercount)."""
        live = 0
        for _, entries in self._registered():
            docs = self._load_docs(e[0] for e in entries)
            live += sum(1 for d in docs.values() if "moved_to" not in d and d["expires_at"] > now)
        return live

    def close_sync(self) -> None:
        self._executor.shutdown(wait=False)
        self._pool.close()

    # -- contract: async path (the sync code on a dedicated thread pool) ---------------
    async def _offload(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._executor_pid != process_id():
            # A forked child inherits the pool object but none of its threads: work sent
            # to it could wait forever for an "idle" thread that only exists in the parent.
            self._executor = self._new_executor()
            self._executor_pid = process_id()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def get(self, key: str) -> SessionRecord | None:
        return await self._offload(self.get_sync, key)

    async def create(self, record: SessionRecord) -> None:
        await self._offload(self.create_sync, record)

    async def apply(self, key: str, patch: Patch) -> bool:
        return await self._offload(self.apply_sync, key, patch)

    async def rename(self, old_key: str, new_key: str, patch: Patch) -> bool:
        return await self._offload(self.rename_sync, old_key, new_key, patch)

    async def delete(self, key: str) -> bool:
        return await self._offload(self.delete_sync, key)

    async def get_by_handle(self, handle: str) -> SessionRecord | None:
        return await self._offload(self.get_by_handle_sync, handle)

    async def list_user(self, user_id: str, now: float) -> list[SessionRecord]:
        return await self._offload(self.list_user_sync, user_id, now)

    async def delete_handle(self, handle: str) -> SessionRecord | None:
        return await self._offload(self.delete_handle_sync, handle)

    async def delete_user(self, user_id: str, except_handle: str | None = None) -> int:
        return await self._offload(self.delete_user_sync, user_id, except_handle)

    async def purge_expired(self, now: float, batch_size: int) -> int:
        return await self._offload(self.purge_expired_sync, now, batch_size)

    async def count(self, now: float) -> int:
        return await self._offload(self.count_sync, now)

    async def close(self) -> None:
        self.close_sync()


_OPTIONS: dict[str, Callable[[str], Any]] = {
    "prefix": str,
    "timeout": float,
    "connect_timeout": float,
    "pool_size": int,
    "max_ttl": float,
}


def from_url(url: str) -> MemcachedStore:
    """``memcached://host[:port][?prefix=cc:&timeout=1&connect_timeout=1&pool_size=10]``.

    Timeouts are in seconds; ``max_ttl`` caps an item's lifetime in seconds. One server per
    store: memcached does not replicate, so spreading sessions over several servers only
    spreads the loss when one of them fails.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "memcached":
        raise ValueError(f"not a memcached URL: {url!r}")
    if parts.username or parts.password:
        raise ValueError("memcached URLs take no credentials (SASL is not supported)")
    if parts.path not in ("", "/"):
        raise ValueError(f"memcached URLs have no path, got {parts.path!r}")
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ValueError(f"unknown memcached URL options: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, raw in options.items():
        try:
            kwargs[name] = _OPTIONS[name](raw)
        except ValueError:
            raise ValueError(f"memcached URL option {name}={raw!r} is invalid") from None
    host = parts.hostname or "127.0.0.1"
    return MemcachedStore(host, parts.port or 11211, **kwargs)
