"""RedisStore: sessions in Redis or Valkey, standalone, behind Sentinel, or on a Cluster.

Layout (``P`` is the key prefix, ``coatcheck:`` by default)::

    P s:<key>      hash, the whole session: "d:<name>" holds the JSON text of one session
                   value; "l", "e" and "a" the last-seen time and the two deadlines
                   (expires_at, absolute_at) as exact decimal text; "m" the rest of the
                   record's metadata as one JSON object of strings (short names: h handle,
                   u user_id, c created_at, t auth_at, r remember, ua user_agent, ip,
                   x meta; absent means None, False or empty). Data fields all start with
                   "d:", so a user's keys never collide with metadata. A commit is
                   HSET/HDEL of exactly the fields that changed (the common one, data and
                   a touch, decodes no JSON on the server); a change to "m" is merged by
                   the script (cjson, strings only, so no number loses a digit). The key's
                   TTL is the record's deadline (PEXPIREAT min(expires_at, absolute_at)),
                   so Redis drops a session by itself when it ends.
    P h:<handle>   string: the storage key of the session with that public handle (revoke,
                   ``is_active``). Expires at the session's absolute deadline.
    P u:<user_id>  sorted set: the handles of a user's sessions, scored by absolute deadline.

``<key>`` is SHA-256 of the token (all a store ever receives): no key or value here holds a
raw token. The only other identifiers are public handles and user ids.

Round trips (what an operation costs on the wire; each line is one request/response):

- load: HGETALL. One. (Metadata packed in few fields keeps the reply short: a session with
  one value is ten bulk strings, not twenty-odd, which the profile showed costing more
  than the rest of the load; it also keeps a small session's hash small in memory.)
- commit of a data change, or a touch: one Lua script that checks the record exists
  (never resurrecting it), applies the delta and resets the TTL. One, on every topology.
  (Scripts run by EVALSHA; the first call on a node whose script cache is empty, after a
  restart or failover, costs one more: NOSCRIPT, then EVAL, which caches it again.)
- a read-only request between touches: the load, nothing else.
- new session: one MULTI pipeline (record, handle pointer, user index).
- login/regenerate (a rename): one script on a single node; two on a cluster (below).
- logout: one script on a single node; two on a cluster.

Why the indexes cannot leak. Spring Session's index of a user's sessions grows forever when
an expiry notification is missed. Here nothing depends on notifications (they need CONFIG,
which managed Redis disables): every index entry is scored by its session's *absolute*
deadline, which only a login changes, so the hot path never has to update the index; each
access trims entries whose deadline passed (ZREMRANGEBYSCORE) and the sorted set itself
expires with its last deadline, so an abandoned user's index disappears even if nobody ever
reads it again. Entries whose session ended early (idle timeout, logout that crashed
half-way) are filtered on read and, on a single node, removed atomically when found. The
handle pointer expires at the absolute deadline for the same reason.

Redis Cluster. A session is one key, so it always lives in one slot, and every script
touches exactly one key; pipelines are split by the client per node and are one round trip
of latency. The one operation that spans slots is a rename: the new token's key hashes to a
different slot than the old one, and nothing stable (the handle) is known to a loader that
only has the token. So on a cluster a rename is two steps: a script on the old slot applies
the patch, returns the record and deletes it (the old token is dead from that instant), then
one pipeline writes the record under the new key and repoints the handle and user index.
Nobody knows the new key until the commit returns, so the gap is invisible to other
requests; if the second step fails the user is logged out (fail-safe), never left holding a
live old token. The cost: a revocation that runs within that one round trip can miss the
session being logged in. On a single node (standalone or Sentinel) the same rename is one
atomic script: the store remembers, per process, the handle and user of the records it just
loaded, so the script can name every key it touches (never computing key names inside Lua,
which would break on proxies and clusters); a hint that turned out stale only costs the
two-step path.

Time. Deadlines come from the manager's clock and become absolute TTLs on Redis' clock
(PEXPIREAT), so the TTL equals the deadline exactly; the policy, on the app's clock, stays
the judge of validity. App and Redis clocks should agree (NTP): a skew only moves the moment
Redis reclaims memory, never lets an expired session in. Tests that freeze time in the future
still see every record (purge then deletes by the record's own deadline).

Failures. Every Redis error, timeout or lost connection is ``StoreUnavailable``. Timeouts are
bounded: waiting for a free connection, connecting and each operation each have a limit, and
a lost connection is retried once at once (a pooled socket that died with a restarted
server), never with a sleep.

Requires Redis >= 7.0 or Valkey (``SET PXAT``, ``PEXPIREAT NX/GT``); needs no CONFIG,
keyspace notifications, KEYS or other admin commands (``purge`` and ``count`` use SCAN).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.retry
import redis.sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError

from coatcheck.core.record import PATCHABLE_FIELDS, Patch, SessionRecord
from coatcheck.errors import StoreUnavailable
from coatcheck.stores.base import (
    ProcedureCountable,
    ProcedureHandleIndex,
    ProcedurePurgeable,
    ProcedureUserIndex,
    Statistics,
    process_id,
)

__all__ = ["DEFAULT_PREFIX", "RedisOptions", "RedisStore", "from_url"]

T = TypeVar("T")

DEFAULT_PREFIX = "coatcheck:"

# -- Lua ---------------------------------------------------------------------------------
# Shared helpers, prepended to every script. ``patch`` reads a delta from ARGV starting at
# ``i``: a count and the fields to delete, then a count and field/value pairs to set.
# ``unpack`` is chunked because Lua's C stack caps the number of arguments.
_LUA_HELPERS = {
    "meta": """
local function meta(key)
  local text = redis.call('HGET', key, 'm')
  if not text then return nil end
  return cjson.decode(text)
end
""",
    "patch": """
-- Applies a delta read from ARGV at i: plain fields to delete, plain field/value pairs (data
-- and the deadlines), packed metadata names to delete, packed name/value pairs. Only a
-- delta that touches the packed metadata decodes it (cjson; its values are strings).
local function patch(key, argv, i)
  local n = tonumber(argv[i])
  local first, last = i + 1, i + n
  while first <= last do
    local stop = math.min(first + 999, last)
    redis.call('HDEL', key, unpack(argv, first, stop))
    first = stop + 1
  end
  i = last + 1
  n = tonumber(argv[i])
  first, last = i + 1, i + 2 * n
  while first <= last do
    local stop = math.min(first + 1999, last)
    redis.call('HSET', key, unpack(argv, first, stop))
    first = stop + 1
  end
  i = last + 1
  local drop, set = tonumber(argv[i]), tonumber(argv[i + 1 + tonumber(argv[i])])
  if drop + set > 0 then
    local m = meta(key)
    for j = i + 1, i + drop do m[argv[j]] = nil end
    i = i + drop + 1
    for j = i + 1, i + 2 * set, 2 do m[argv[j]] = argv[j + 1] end
    redis.call('HSET', key, 'm', cjson.encode(m))
  else
    i = i + 1
  end
  return i + 2 * set + 1
end
""",
    "ms": """
local function ms(seconds)
  return string.format('%.0f', math.max(tonumber(seconds) * 1000, 1))
end
""",
    "expire": """
local function expire(key)
  local ea = redis.call('HMGET', key, 'e', 'a')
  redis.call('PEXPIREAT', key, ms(math.min(tonumber(ea[1]), tonumber(ea[2]))))
end
""",
    "index_add": """
local function index_add(idx, handle, score, now)
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
  redis.call('ZADD', idx, score, handle)
  redis.call('PEXPIREAT', idx, ms(score), 'NX')
  redis.call('PEXPIREAT', idx, ms(score), 'GT')
end
""",
}
"""Helpers a script may use, in an order where each comes after those it calls. A script
includes only those it names: every ``local function`` is a closure made anew on each call,
which measured 3-4 µs of a commit's 10 µs of server time when all came with every script."""


class _Script:
    """A Lua script with its SHA1, run by EVALSHA with a fallback to EVAL."""

    __slots__ = ("sha", "text")

    def __init__(self, body: str, *uses: str) -> None:
        unknown = set(uses) - set(_LUA_HELPERS)
        if unknown:
            raise ValueError(f"unknown Lua helpers: {sorted(unknown)}")
        helpers = "".join(text for name, text in _LUA_HELPERS.items() if name in uses)
        self.text = helpers + body
        self.sha = hashlib.sha1(self.text.encode(), usedforsecurity=False).hexdigest()


_APPLY_EXISTS = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
_APPLY_BODY = (
    """
-- KEYS[1] record. ARGV[1] the record's new deadline in Unix ms when a deadline changed
-- ('' when not; '*' to compute it from the stored deadlines): its TTL. ARGV[2] '1': the
-- user or the absolute deadline changed, return what the caller needs to re-index. Then
-- the patch. The common commit (data and a touch) is three commands and decodes no JSON.
"""
    + _APPLY_EXISTS
    + """local before = ''
if ARGV[2] == '1' then before = meta(KEYS[1]).u or '' end
patch(KEYS[1], ARGV, 3)
if ARGV[1] == '*' then
  expire(KEYS[1])
elseif ARGV[1] ~= '' then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
if ARGV[2] == '1' then
  local m = meta(KEYS[1])
  return {1, m.h or '', before, m.u or '', redis.call('HGET', KEYS[1], 'a') or '0'}
end
return 1
"""
)
_APPLY = _Script(_APPLY_BODY, "meta", "patch", "ms", "expire")
_APPLY_IF_HANDLE = _Script(
    _APPLY_BODY.replace(
        _APPLY_EXISTS,
        "-- Guarded (Patch.expect_handle): the record's handle is the last ARGV.\n"
        "local g = meta(KEYS[1])\n"
        "if not g or g.h ~= ARGV[#ARGV] then return 0 end\n",
    ),
    "meta",
    "patch",
    "ms",
    "expire",
)

_TAKE = _Script(
    """
-- KEYS[1] record. ARGV[1] the expected handle ('' for any), then a patch. Applies the
-- patch, deletes the record and returns {user before the patch, field, value, ...}.
local m = meta(KEYS[1])
if not m then return false end
if ARGV[1] ~= '' and m.h ~= ARGV[1] then return false end
local before = m.u or ''
patch(KEYS[1], ARGV, 2)
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
table.insert(fields, 1, before)
return fields
""",
    "meta",
    "patch",
)

_RENAME = _Script(
    """
-- Single node only. KEYS: old record, new record, handle pointer, then the old user's index
-- (when ARGV[2] ~= '') and the new user's index (when ARGV[3] ~= '', always last).
-- ARGV[1] handle, [2] old user, [3] new user, [4] new key, [5] now, then the patch.
-- Returns 1, 0 (no such record) or -1 (the caller's handle/user hint is stale).
local m = meta(KEYS[1])
if not m then return 0 end
if m.h ~= ARGV[1] or (m.u or '') ~= ARGV[2] then return -1 end
redis.call('RENAME', KEYS[1], KEYS[2])
patch(KEYS[2], ARGV, 6)
local absolute = redis.call('HGET', KEYS[2], 'a')
expire(KEYS[2])
redis.call('SET', KEYS[3], ARGV[4], 'PXAT', ms(absolute))
if ARGV[2] ~= '' and ARGV[2] ~= ARGV[3] then redis.call('ZREM', KEYS[4], ARGV[1]) end
if ARGV[3] ~= '' then index_add(KEYS[#KEYS], ARGV[1], absolute, ARGV[5]) end
return 1
""",
    "meta",
    "patch",
    "ms",
    "expire",
    "index_add",
)

_DELETE = _Script(
    """
-- Single node only. KEYS: record, handle pointer, [user index]. ARGV[1] handle, [2] user.
-- Returns 1, 0 (no such record) or -1 (stale hint: nothing changed).
local m = meta(KEYS[1])
if not m then return 0 end
if m.h ~= ARGV[1] or (m.u or '') ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[3], ARGV[1]) end
return 1
""",
    "meta",
)

_DROP_IF = _Script(
    """
-- KEYS[1] record. ARGV[1] 'user': delete if its user is ARGV[2] and its handle ARGV[3];
-- 'expired': delete if its deadline is at or before ARGV[2]. Returns {handle, user} or nil.
local m = meta(KEYS[1])
if not m or not m.h then return false end
local h, u = m.h, m.u or ''
if ARGV[1] == 'user' then
  if u ~= ARGV[2] or h ~= ARGV[3] then return false end
else
  local ea = redis.call('HMGET', KEYS[1], 'e', 'a')
  if math.min(tonumber(ea[1]), tonumber(ea[2])) > tonumber(ARGV[2]) then return false end
end
redis.call('DEL', KEYS[1])
return {h, u}
""",
    "meta",
)

_UNLINK = _Script(
    """
-- Single node only: drop a user-index entry whose session is gone, checking atomically
-- that it is (a concurrent rename may have just moved it). KEYS: user index, handle
-- pointer, record the pointer named. ARGV[1] handle, [2] key the pointer held ('' none),
-- [3] user.
local key = redis.call('GET', KEYS[2])
if (key or '') ~= ARGV[2] then return 0 end
if key then
  local m = meta(KEYS[3])
  if m and (m.u or '') == ARGV[3] then return 0 end
  if not m then redis.call('DEL', KEYS[2]) end
end
return redis.call('ZREM', KEYS[1], ARGV[1])
""",
    "meta",
)


# -- operations as data, run by a sync or an async driver --------------------------------
@dataclass(frozen=True, slots=True)
class _Cmd:
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Eval:
    script: _Script
    keys: tuple[str, ...]
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Batch:
    """Several commands in one round trip; ``atomic`` makes it MULTI/EXEC on a single node
    (a cluster pipeline is never a transaction: each command is atomic on its own key)."""

    steps: tuple[_Cmd | _Eval, ...]
    atomic: bool = False


@dataclass(frozen=True, slots=True)
class _ScanPage:
    """One SCAN page; ``cursor`` is None to start. Result: (next cursor or None, keys)."""

    match: str
    count: int
    cursor: Any = None


@dataclass(frozen=True, slots=True)
class _Pause:
    """Sleep this long (a background job leaving the server and the CPU to requests)."""

    seconds: float


_Wire = _Cmd | _Eval | _Batch | _ScanPage
_Op = _Wire | _Pause

_PURGE_REST = 1.0
"""A purge rests this many times as long as each step took: it keeps at most half a core
(and half of the server) busy. (Measured: resting three times as long did not lower the
readers' p99 during a purge, only lengthened the purge.)"""

_PURGE_SCRIPTS = 16
"""Purge scripts per pipeline at most (each runs for some microseconds on the server)."""

_PURGE_PAGE = 100
"""Keys per purge page at most. A page is one SCAN and one pipeline, whose packing and
replies take the client's CPU in one go: small pages keep each stall of an app's event
loop (a purge run as an in-app task) well under a request's latency."""
_Steps = Generator[_Op, Any, T]


# -- encoding ----------------------------------------------------------------------------
_PLAIN = {"last_seen_at": "l", "expires_at": "e", "absolute_at": "a"}
"""Record fields kept as hash fields of their own: the deadlines, which most commits
change and scripts read, are written and read without decoding any JSON."""

_SHORT = {
    "handle": "h",
    "user_id": "u",
    "created_at": "c",
    "auth_at": "t",
    "remember": "r",
    "user_agent": "ua",
    "ip": "ip",
    "meta": "x",
}
"""The other record fields -> their names inside the packed metadata field "m" (short:
stored once per session, read on every request)."""

_REQUIRED = ("h", "c")

_json_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_value_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_json_value = json.JSONDecoder().decode


def _num(value: float) -> str:
    """Seconds as text that round-trips exactly (repr of a float)."""
    return repr(float(value))


def _ms(seconds: float) -> int:
    """Unix milliseconds for PEXPIREAT/PXAT (at least 1: zero and below are refused)."""
    return max(round(seconds * 1000), 1)


def _encode_field(name: str, value: Any) -> str | None:
    """One metadata value as the string kept in "m"; None when it is left out (None,
    False, an empty ``meta``), which reads back as the same value."""
    if value is None:
        return None
    if name == "remember":
        return "1" if value else None
    if name == "meta":
        return _json_text(value) if value else None
    if name in ("handle", "user_id", "user_agent", "ip"):
        return str(value)
    return _num(value)


def _meta_text(record: SessionRecord) -> str:
    """The packed metadata field of a whole record."""
    packed: dict[str, str] = {}
    for name, short in _SHORT.items():
        encoded = _encode_field(name, getattr(record, name))
        if encoded is not None:
            packed[short] = encoded
    return _json_text(packed)


def _record_fields(record: SessionRecord) -> list[str]:
    """Flat field/value list of a whole record, for HSET."""
    out = ["m", _meta_text(record)]
    out += ("l", _num(record.last_seen_at), "e", _num(record.expires_at))
    out += ("a", _num(record.absolute_at))
    for key, value in record.data.items():
        out += ("d:" + key, _value_text(value))
    return out


def _patch_args(patch: Patch) -> list[str]:
    """The patch as the Lua ``patch`` helper reads it."""
    deletes = ["d:" + k for k in patch.removed]
    pairs: list[str] = []
    for k, v in patch.set_json.items():
        pairs += ("d:" + k, v)
    meta_deletes: list[str] = []
    meta_pairs: list[str] = []
    for name, value in patch.fields.items():
        if name not in PATCHABLE_FIELDS:
            raise ValueError(f"field {name!r} cannot be patched")
        plain = _PLAIN.get(name)
        if plain is not None:
            pairs += (plain, _num(value))  # deadlines are never None
            continue
        encoded = _encode_field(name, value)
        if encoded is None:
            meta_deletes.append(_SHORT[name])
        else:
            meta_pairs += (_SHORT[name], encoded)
    return [
        str(len(deletes)),
        *deletes,
        str(len(pairs) // 2),
        *pairs,
        str(len(meta_deletes)),
        *meta_deletes,
        str(len(meta_pairs) // 2),
        *meta_pairs,
    ]


_NO_PATCH = ("0", "0", "0", "0")


def _unpack(text: str) -> dict[str, str] | None:
    """The packed metadata field's content, or None when it is not what this store wrote
    (not JSON, or without the handle and creation time)."""
    try:
        packed = _json_value(text)
    except ValueError:
        return None
    if not isinstance(packed, dict) or "h" not in packed or "c" not in packed:
        return None
    return packed


def _decode(key: str, fields: Mapping[str, str] | Sequence[str]) -> SessionRecord | None:
    """A record from its hash (a mapping, or the flat field/value list of a reply that no
    client callback turned into one), or None when it is missing, incomplete or not what
    this store writes (a load then starts a fresh session, never a 500). Runs on every
    load: one pass, no intermediate dict."""
    flat = [x for kv in fields.items() for x in kv] if isinstance(fields, Mapping) else fields
    try:
        return _decoded(key, flat)
    except (KeyError, ValueError, TypeError):
        return None


def _decoded(key: str, flat: Sequence[str]) -> SessionRecord | None:
    loads = _json_value
    data: dict[str, Any] = {}
    text = last_seen = expires = absolute = None
    for i in range(0, len(flat) - 1, 2):
        name = flat[i]
        if name[:2] == "d:":
            data[name[2:]] = loads(flat[i + 1])
        elif name == "m":
            text = flat[i + 1]
        elif name == "l":
            last_seen = flat[i + 1]
        elif name == "e":
            expires = flat[i + 1]
        elif name == "a":
            absolute = flat[i + 1]
    if text is None or last_seen is None or expires is None or absolute is None:
        return None
    m = _unpack(text)
    if m is None:
        return None
    get = m.get
    auth_at = get("t")
    meta = get("x")
    return SessionRecord(
        key=key,
        handle=m["h"],
        data=data,
        created_at=float(m["c"]),
        last_seen_at=float(last_seen),
        expires_at=float(expires),
        absolute_at=float(absolute),
        user_id=get("u"),
        auth_at=float(auth_at) if auth_at is not None else None,
        remember=get("r") == "1",
        user_agent=get("ua"),
        ip=get("ip"),
        meta=loads(meta) if meta is not None else {},
    )


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class _Hints:
    """Per-process memory of the (handle, user) of records this process just loaded or
    wrote, so that a rename or delete on a single node can name every key it touches in
    one script. Only ever a hint: the scripts verify it and a stale one costs a round trip."""

    def __init__(self, size: int = 8192) -> None:
        self._size = size
        self._items: dict[str, tuple[str, str | None]] = {}
        self._lock = threading.Lock()

    def remember(self, key: str, handle: str, user_id: str | None) -> None:
        if not self._size:
            return
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (handle, user_id)
            if len(self._items) > self._size:
                del self._items[next(iter(self._items))]

    def pop(self, key: str) -> tuple[str, str | None] | None:
        with self._lock:
            return self._items.pop(key, None)


# -- connection settings -----------------------------------------------------------------
Mode = Literal["standalone", "sentinel", "cluster"]

_SSL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": str,
    "ssl_check_hostname": lambda v: v.lower() in ("1", "true", "yes", "on"),
}


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """Where and how to connect, parsed from a URL by ``RedisOptions.from_url``.

    ``timeout`` bounds each operation (socket reads and writes, and the wait for a free
    connection); ``connect_timeout`` bounds opening a connection; ``max_connections`` caps
    operations in flight per process and path (sync and async each have their own pool).
    """

    mode: Mode
    hosts: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    tls: bool = False
    service_name: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    prefix: str = DEFAULT_PREFIX
    timeout: float = 2.0
    connect_timeout: float = 1.0
    max_connections: int = 50
    ssl: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("a Redis URL needs at least one host")
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError("the key prefix must not contain { or } (they pick cluster slots)")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.mode == "cluster" and self.db != 0:
            raise ValueError("Redis Cluster has only database 0")
        if self.mode == "sentinel" and not self.service_name:
            raise ValueError("a redis+sentinel URL names the master: redis+sentinel://h:p/name")

    @classmethod
    def from_url(cls, url: str) -> RedisOptions:
        """Parse ``redis://``, ``rediss://``, ``redis+sentinel://`` or ``redis+cluster://``.

        Forms: ``redis://[user:password@]host[:port][/db]``,
        ``redis+sentinel://[user:password@]h1:26379,h2:26379/master[/db]``,
        ``redis+cluster://[user:password@]h1:7000,h2:7001``. Query options: ``prefix``,
        ``timeout``, ``connect_timeout``, ``max_connections``, ``db``, ``ssl`` (TLS for
        Sentinel and Cluster; ``rediss://`` for a single server), ``ssl_ca_certs``,
        ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``, ``ssl_check_hostname``,
        ``sentinel_username``, ``sentinel_password`` (when the Sentinels have their own).
        """
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise ValueError(f"not a URL: {url!r}")
        scheme = scheme.lower()
        modes: dict[str, tuple[Mode, bool, int]] = {
            "redis": ("standalone", False, 6379),
            "rediss": ("standalone", True, 6379),
            "redis+sentinel": ("sentinel", False, 26379),
            "redis+cluster": ("cluster", False, 6379),
        }
        if scheme not in modes:
            raise ValueError(f"not a Redis URL: {url!r}")
        mode, tls, default_port = modes[scheme]
        parts = urlsplit("redis://" + rest)
        netloc = parts.netloc
        userinfo, at, hostlist = netloc.rpartition("@")
        if not at:
            userinfo, hostlist = "", netloc
        username: str | None = None
        password: str | None = None
        if userinfo:
            user, colon, secret = userinfo.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if colon else None
        hosts = tuple(_parse_host(h, default_port) for h in hostlist.split(",") if h)
        path = [unquote(p) for p in parts.path.split("/") if p]
        kwargs: dict[str, Any] = {}
        if mode == "sentinel" and path:
            kwargs["service_name"] = path.pop(0)
        if path:
            if len(path) > 1 or not path[0].isdigit():
                raise ValueError(f"unexpected path in Redis URL: {parts.path!r}")
            kwargs["db"] = int(path[0])
        ssl: dict[str, Any] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name == "prefix":
                kwargs["prefix"] = value
            elif name in ("timeout", "connect_timeout"):
                kwargs[name] = float(value)
            elif name in ("max_connections", "db"):
                kwargs[name] = int(value)
            elif name == "ssl":
                tls = value.lower() in ("1", "true", "yes", "on")
            elif name in ("sentinel_username", "sentinel_password") and mode == "sentinel":
                kwargs[name] = value
            elif name in _SSL_OPTIONS:
                ssl[name] = _SSL_OPTIONS[name](value)
            else:
                raise ValueError(f"unknown Redis URL option {name!r}")
        return cls(
            mode=mode,
            hosts=hosts,
            username=username,
            password=password,
            tls=tls,
            ssl=ssl,
            **kwargs,
        )


def _parse_host(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError(f"empty host in Redis URL: {text!r}")
    return host, int(port) if port else default_port


def _connection_kwargs(o: RedisOptions, retry: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "username": o.username,
        "password": o.password,
        "socket_timeout": o.timeout,
        "socket_connect_timeout": o.connect_timeout,
        "decode_responses": True,
        "retry": retry,
        "protocol": 2,
    }
    if o.tls:
        kwargs.update(o.ssl)
    return kwargs


def _sentinel_kwargs(o: RedisOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": o.timeout,
        "socket_connect_timeout": o.connect_timeout,
        "username": o.sentinel_username,
        "password": o.sentinel_password,
    }
    if o.tls:
        kwargs.update(o.ssl, ssl=True)
    return kwargs


# redis-py leaves a few constructors unannotated; go through Any rather than silence mypy.
_SyncClusterNode: Any = redis.cluster.ClusterNode
_SyncSentinel: Any = redis.sentinel.Sentinel
_AsyncClusterNode: Any = redis.asyncio.cluster.ClusterNode
_AsyncSentinel: Any = redis.asyncio.sentinel.Sentinel


def _sync_client(o: RedisOptions) -> Any:
    """A redis-py client: one pool, at most ``max_connections`` connections (per node)."""
    retry = redis.retry.Retry(NoBackoff(), 1, (RedisConnectionError,))
    kwargs = _connection_kwargs(o, retry)
    if o.mode == "cluster":
        return redis.cluster.RedisCluster(
            startup_nodes=[_SyncClusterNode(h, p) for h, p in o.hosts],
            max_connections=o.max_connections,
            ssl=o.tls,
            **kwargs,
        )
    if o.mode == "sentinel":
        sentinel = _SyncSentinel(
            list(o.hosts), sentinel_kwargs=_sentinel_kwargs(o), ssl=o.tls, **kwargs
        )
        return sentinel.master_for(o.service_name, db=o.db, max_connections=o.max_connections)
    host, port = o.hosts[0]
    pool = redis.ConnectionPool(
        connection_class=redis.SSLConnection if o.tls else redis.Connection,
        host=host,
        port=port,
        db=o.db,
        max_connections=o.max_connections,
        **kwargs,
    )
    return redis.Redis(connection_pool=pool)


def _async_client(o: RedisOptions) -> Any:
    retry = redis.asyncio.retry.Retry(NoBackoff(), 1, (RedisConnectionError,))
    kwargs = _connection_kwargs(o, retry)
    if o.mode == "cluster":
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=[_AsyncClusterNode(h, p) for h, p in o.hosts],
            max_connections=o.max_connections,
            ssl=o.tls,
            **kwargs,
        )
    if o.mode == "sentinel":
        sentinel = _AsyncSentinel(
            list(o.hosts), sentinel_kwargs=_sentinel_kwargs(o), ssl=o.tls, **kwargs
        )
        return sentinel.master_for(o.service_name, db=o.db, max_connections=o.max_connections)
    host, port = o.hosts[0]
    pool = redis.asyncio.ConnectionPool(
        connection_class=redis.asyncio.SSLConnection if o.tls else redis.asyncio.Connection,
        host=host,
        port=port,
        db=o.db,
        max_connections=o.max_connections,
        **kwargs,
    )
    return redis.asyncio.Redis(connection_pool=pool)


_FAILURES = (RedisError, RedisClusterException, OSError)
"""What a Redis client raises when the server is unreachable, slow or refusing (OSError
covers socket errors and TimeoutError)."""


_NO_SLOT = "Redis store: no free connection within the timeout"


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"Redis store: {type(exc).__name__}: {exc}")


# -- drivers -----------------------------------------------------------------------------
class _SyncDriver:
    """Runs operations with a sync redis-py client; at most ``max_connections`` at once."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self.cluster = options.mode == "cluster"
        self._client: Any = None
        self._lock = threading.Lock()
        # One token per operation allowed in flight; SimpleQueue is C, so taking and
        # returning one costs a fraction of a threading.Semaphore (whose Condition is
        # Python). Idle direct connections wait in a list, last in first out, so that
        # sequential traffic keeps reusing one (list.pop and append are atomic).
        self._slots = self._new_slots()
        self._idle: list[Any] = []
        self._pid = process_id()

    def _new_slots(self) -> queue.SimpleQueue[None]:
        slots: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(self.options.max_connections):
            slots.put(None)
        return slots

    def _after_fork(self) -> None:
        """A child process (a pre-forking server's worker) must never talk on sockets it
        inherited: its parent reads replies from them too, and a reply read by the wrong
        process is another user's session. The child drops them unclosed (closing could
        shut the parent's connection down) and opens its own."""
        with self._lock:
            if self._pid != process_id():
                self._slots = self._new_slots()
                self._idle = []
                self._pid = process_id()

    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    # A cluster client fetches the slot map here: errors are mapped by run().
                    self._client = _sync_client(self.options)
        return self._client

    def run(self, op: _Op) -> Any:
        if isinstance(op, _Pause):  # holds no connection
            time.sleep(op.seconds)
            return None
        if self._pid != process_id():
            self._after_fork()
        slots = self._slots
        try:
            slots.get(timeout=self.options.timeout)
        except queue.Empty:
            raise StoreUnavailable(_NO_SLOT) from None
        try:
            client = self.client()
            if not self.cluster and isinstance(op, _Cmd | _Eval):
                idle = self._idle
                conn = _idle_or_new(idle, client)
                try:
                    try:
                        return _call_sync(conn, _direct_args(op, cached=True))
                    except NoScriptError:
                        return _call_sync(conn, _direct_args(op, cached=False))
                finally:
                    idle.append(conn)
            return self._run(client, op)
        except StoreUnavailable:
            raise
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        finally:
            slots.put(None)

    def _run(self, client: Any, op: _Wire) -> Any:
        if isinstance(op, _Cmd):
            return client.execute_command(*op.args)
        if isinstance(op, _Eval):
            n = len(op.keys)
            try:
                return client.execute_command("EVALSHA", op.script.sha, n, *op.keys, *op.args)
            except NoScriptError:
                return client.execute_command("EVAL", op.script.text, n, *op.keys, *op.args)
        if isinstance(op, _Batch):
            pipe = client.pipeline(transaction=op.atomic and not self.cluster)
            for step in op.steps:
                pipe.execute_command(*_batch_args(step, cached=not op.atomic))
            if op.atomic:
                return pipe.execute()
            results = pipe.execute(raise_on_error=False)
            missing = _unknown_scripts(results)
            if missing:
                pipe = client.pipeline(transaction=False)
                for i in missing:
                    pipe.execute_command(*_batch_args(op.steps[i], cached=False))
                for i, result in zip(missing, pipe.execute(raise_on_error=False), strict=True):
                    results[i] = result
            return _raise_errors(results)
        return self._scan(client, op)

    def _scan(self, client: Any, op: _ScanPage) -> tuple[Any, list[str]]:
        if not self.cluster:
            cursor, keys = client.scan(cursor=op.cursor or 0, match=op.match, count=op.count)
            return (cursor or None), list(keys)
        pending = op.cursor or [(node, 0) for node in client.get_primaries()]
        node, cursor = pending[0]
        cursors, keys = client.scan(
            cursor=cursor, match=op.match, count=op.count, target_nodes=node
        )
        return _next_pending(pending, cursors[node.name]), list(keys)

    def close(self) -> None:
        client, self._client = self._client, None
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()
        if client is not None:
            client.close()


class _AsyncDriver:
    """The same with a redis.asyncio client. A client's connections belong to the event
    loop that opened them, so each loop that uses the store gets its own client (an app
    served by uvicorn and a test or a CLI calling the same store from another loop)."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self.cluster = options.mode == "cluster"
        self._per_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[Any, asyncio.Semaphore, list[Any]]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        # The last loop's state, checked first (an app runs on one loop): a weak reference
        # to the loop and the state, swapped as one tuple so threads never see a mix.
        self._last: tuple[Any, tuple[Any, asyncio.Semaphore, list[Any]], int] | None = None

    def _state(self) -> tuple[Any, asyncio.Semaphore, list[Any]]:
        loop = asyncio.get_running_loop()
        last = self._last
        pid = process_id()
        if last is not None and last[0]() is loop and last[2] == pid:
            return last[1]
        state = self._per_loop.get(loop)
        if state is None or (last is not None and last[2] != pid):
            # (A loop inherited through fork() keeps its state object: its sockets are the
            # parent's, never to be used here; see _SyncDriver._after_fork.)
            state = (
                _async_client(self.options),
                asyncio.Semaphore(self.options.max_connections),
                [],  # idle direct connections (see the direct commands below)
            )
            with self._lock:
                self._per_loop[loop] = state
        self._last = (weakref.ref(loop), state, pid)
        return state

    async def run(self, op: _Op) -> Any:
        if isinstance(op, _Pause):  # holds no connection
            await asyncio.sleep(op.seconds)
            return None
        try:
            client, slots, idle = self._state()
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        if slots.locked():  # only a full pool pays for a timed wait
            try:
                await asyncio.wait_for(slots.acquire(), self.options.timeout)
            except TimeoutError:
                raise StoreUnavailable(_NO_SLOT) from None
        else:
            await slots.acquire()
        try:
            if not self.cluster and isinstance(op, _Cmd | _Eval):
                conn = _idle_or_new(idle, client)
                try:
                    try:
                        return await _call_async(conn, _direct_args(op, cached=True))
                    except NoScriptError:
                        return await _call_async(conn, _direct_args(op, cached=False))
                finally:
                    idle.append(conn)
            return await self._run(client, op)
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        finally:
            slots.release()

    async def _run(self, client: Any, op: _Wire) -> Any:
        if isinstance(op, _Cmd):
            return await client.execute_command(*op.args)
        if isinstance(op, _Eval):
            n = len(op.keys)
            try:
                return await client.execute_command("EVALSHA", op.script.sha, n, *op.keys, *op.args)
            except NoScriptError:
                return await client.execute_command("EVAL", op.script.text, n, *op.keys, *op.args)
        if isinstance(op, _Batch):
            pipe = client.pipeline(transaction=op.atomic and not self.cluster)
            for step in op.steps:
                pipe.execute_command(*_batch_args(step, cached=not op.atomic))
            if op.atomic:
                return await pipe.execute()
            results = await pipe.execute(raise_on_error=False)
            missing = _unknown_scripts(results)
            if missing:
                pipe = client.pipeline(transaction=False)
                for i in missing:
                    pipe.execute_command(*_batch_args(op.steps[i], cached=False))
                again = await pipe.execute(raise_on_error=False)
                for i, result in zip(missing, again, strict=True):
                    results[i] = result
            return _raise_errors(results)
        return await self._scan(client, op)

    async def _scan(self, client: Any, op: _ScanPage) -> tuple[Any, list[str]]:
        if not self.cluster:
            cursor, keys = await client.scan(cursor=op.cursor or 0, match=op.match, count=op.count)
            return (cursor or None), list(keys)
        pending = op.cursor or [(node, 0) for node in client.get_primaries()]
        node, cursor = pending[0]
        cursors, keys = await client.scan(
            cursor=cursor, match=op.match, count=op.count, target_nodes=node
        )
        return _next_pending(pending, cursors[node.name]), list(keys)

    async def close(self) -> None:
        """Close the client of the running loop (other loops' clients die with them)."""
        with self._lock:
            state = self._per_loop.pop(asyncio.get_running_loop(), None)
            self._last = None
        if state is not None:
            client, _, idle = state
            for conn in idle:
                await conn.disconnect()
            closer = getattr(client, "aclose", None) or client.close
            await closer()


# -- direct commands ---------------------------------------------------------------------
# A request's own commands (the load, the commit's script) skip redis-py's client layer:
# on a single node (standalone or Sentinel) they go straight to a connection the driver
# keeps. The client layer's pool bookkeeping, per-command observability and timeout
# wrappers cost a fifth to a third of a loopback round trip (measured: a GET through the
# client 98 µs, through a kept connection 79 µs async; 114 against 80 sync). redis-py still
# connects (finding the master on Sentinel), packs, sends, parses, decodes and maps server
# errors to exceptions. At most ``max_connections`` operations are in flight (the driver's
# slots). A command that failed other than by a server's error reply leaves its connection
# closed (``_call_sync``), to reconnect on its next use. Pipelines, SCAN and the cluster go
# through the client.


def _new_connection(client: Any) -> Any:
    """A connection with the client's settings (auth, TLS, timeouts; on Sentinel, one that
    finds the current master), outside its pool."""
    pool = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


def _idle_or_new(idle: list[Any], client: Any) -> Any:
    """The most recently used idle connection (``list.pop`` is atomic, so threads may share
    the list), or a new one; the caller appends it back when done."""
    try:
        return idle.pop()
    except IndexError:
        return _new_connection(client)


def _direct_args(op: _Cmd | _Eval, cached: bool) -> tuple[Any, ...]:
    if isinstance(op, _Cmd):
        return op.args
    script, keys = op.script, op.keys
    if cached:
        return ("EVALSHA", script.sha, len(keys), *keys, *op.args)
    return ("EVAL", script.text, len(keys), *keys, *op.args)


def _call_sync(conn: Any, args: tuple[Any, ...]) -> Any:
    """One command and its reply. A connection error is retried once at once on a fresh
    socket (a kept one that died with a restarted server), as the client's
    ``Retry(NoBackoff(), 1)`` did; any other failure but a server's error reply leaves the
    connection closed, so a late reply can never be read as the next command's."""
    for attempt in (1, 2):
        try:
            if not conn.is_connected:
                conn.connect()  # (on Sentinel, this is what finds the master)
            conn.send_command(*args)
            return conn.read_response()
        except ResponseError:
            raise  # the server answered: the connection is in step
        except RedisConnectionError:
            conn.disconnect()
            if attempt == 2:
                raise
        except BaseException:
            conn.disconnect()
            raise
    raise AssertionError("unreachable")


async def _call_async(conn: Any, args: tuple[Any, ...]) -> Any:
    """``_call_sync`` for an asyncio connection (a cancelled request closes it too)."""
    for attempt in (1, 2):
        try:
            if not conn.is_connected:
                await conn.connect()
            await conn.send_command(*args)
            return await conn.read_response()
        except ResponseError:
            raise
        except RedisConnectionError:
            await conn.disconnect(nowait=True)
            if attempt == 2:
                raise
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
    raise AssertionError("unreachable")


def _batch_args(step: _Cmd | _Eval, *, cached: bool) -> tuple[Any, ...]:
    """A step as a pipelined command. Scripts go by EVALSHA (``cached``) in a batch that is
    not a transaction: a page of a purge runs one script per record, and EVAL would send
    the script's whole text each time; the steps the server answers NOSCRIPT did not run
    and are sent again by EVAL. Inside a MULTI they go as EVAL: a NOSCRIPT error half-way
    could not be retried without repeating the commands that already ran."""
    if isinstance(step, _Cmd):
        return step.args
    if cached:
        return ("EVALSHA", step.script.sha, len(step.keys), *step.keys, *step.args)
    return ("EVAL", step.script.text, len(step.keys), *step.keys, *step.args)


def _unknown_scripts(results: Sequence[Any]) -> list[int]:
    """Positions of the pipelined scripts the server did not have cached."""
    return [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]


def _raise_errors(results: list[Any]) -> list[Any]:
    """Results of a pipeline run with ``raise_on_error=False``, raising the first error
    (as a pipeline run with the default would have)."""
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def _next_pending(pending: list[tuple[Any, int]], cursor: int) -> list[tuple[Any, int]] | None:
    node = pending[0][0]
    rest = pending[1:] if int(cursor) == 0 else [(node, int(cursor)), *pending[1:]]
    return rest or None


# -- the store ---------------------------------------------------------------------------
class RedisStore(
    ProcedureHandleIndex, ProcedureUserIndex, ProcedurePurgeable, ProcedureCountable, Statistics
):
    """Sessions in Redis (see the module docstring for the layout and its guarantees).

    Build it from a URL (``RedisStore.from_url("redis://localhost:6379/0")``) or from
    ``RedisOptions``. Connections open lazily, on first use.
    """

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self.prefix = options.prefix
        self.single_node = options.mode != "cluster"
        self._sync = _SyncDriver(options)
        self._async = _AsyncDriver(options)
        self._hints = _Hints(8192 if self.single_node else 0)  # a cluster cannot use them

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        return cls(RedisOptions.from_url(url))

    def __repr__(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.options.hosts)
        return f"<RedisStore {self.options.mode} {hosts} prefix={self.prefix!r}>"

    # -- key names -----------------------------------------------------------------------
    def record_key(self, key: str) -> str:
        return f"{self.prefix}s:{key}"

    def pointer_key(self, handle: str) -> str:
        return f"{self.prefix}h:{handle}"

    def user_key(self, user_id: str) -> str:
        return f"{self.prefix}u:{user_id}"

    # -- drivers -------------------------------------------------------------------------
    def _drive_sync(self, steps: _Steps[T]) -> T:
        result: Any = None
        try:
            while True:
                result = self._sync.run(steps.send(result))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _drive_async(self, steps: _Steps[T]) -> T:
        result: Any = None
        try:
            while True:
                result = await self._async.run(steps.send(result))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    # -- procedures, each written once -----------------------------------------------------
    def _index_add(
        self, user_id: str, handle: str, absolute: float, now: float | None
    ) -> list[_Cmd]:
        """Commands that add ``handle`` to the user's index and keep the index's own TTL
        at its latest deadline (mirrors the Lua ``index_add``)."""
        idx = self.user_key(user_id)
        at = _ms(absolute)
        cmds = [] if now is None else [_Cmd(("ZREMRANGEBYSCORE", idx, "-inf", _num(now)))]
        cmds += [
            _Cmd(("ZADD", idx, _num(absolute), handle)),
            _Cmd(("PEXPIREAT", idx, at, "NX")),
            _Cmd(("PEXPIREAT", idx, at, "GT")),
        ]
        return cmds

    def _put(
        self, key: str, fields: list[str], handle: str, expires: float, absolute: float
    ) -> list[_Cmd]:
        """Commands that write a whole record under ``key`` with its pointer and TTL."""
        rec = self.record_key(key)
        return [
            _Cmd(("DEL", rec)),
            _Cmd(("HSET", rec, *fields)),
            _Cmd(("PEXPIREAT", rec, _ms(min(expires, absolute)))),
            _Cmd(("SET", self.pointer_key(handle), key, "PXAT", _ms(absolute))),
        ]

    def _get(self, key: str) -> _Steps[SessionRecord | None]:
        fields = yield _Cmd(("HGETALL", self.record_key(key)))
        record = _decode(key, fields)
        if record is not None:
            self._hints.remember(key, record.handle, record.user_id)
        return record

    def _create(self, record: SessionRecord) -> _Steps[None]:
        steps = self._put(
            record.key,
            _record_fields(record),
            record.handle,
            record.expires_at,
            record.absolute_at,
        )
        if record.user_id is not None:
            steps += self._index_add(
                record.user_id, record.handle, record.absolute_at, record.last_seen_at
            )
        yield _Batch(tuple(steps), atomic=True)
        self._hints.remember(record.key, record.handle, record.user_id)

    def _apply(self, key: str, patch: Patch) -> _Steps[bool]:
        fields = patch.fields
        # The TTL follows the deadline in force, min(expires_at, absolute_at). The policy
        # never sets expires_at past absolute_at, so a patch that moves expires_at (every
        # touch) sets the TTL to it, and the script reads no field for it; a patch that
        # moves only absolute_at (rare) has the script compute it from both.
        expires = fields.get("expires_at")
        absolute = fields.get("absolute_at")
        ttl = ""
        if expires is not None:
            ttl = str(_ms(expires if absolute is None else min(expires, absolute)))
        elif absolute is not None:
            ttl = "*"
        reindex = "user_id" in fields or absolute is not None
        args = (ttl, "1" if reindex else "0", *_patch_args(patch))
        guard = patch.expect_handle
        if guard is None:
            result = yield _Eval(_APPLY, (self.record_key(key),), args)
        else:
            result = yield _Eval(_APPLY_IF_HANDLE, (self.record_key(key),), (*args, guard))
        if not result:
            self._hints.pop(key)
            return False
        if isinstance(result, list):
            # Rare (the manager changes users only by renaming): keep the indexes in step.
            _, handle, before, after, absolute = result
            if handle:
                steps: list[_Cmd] = []
                if before and before != after:
                    steps.append(_Cmd(("ZREM", self.user_key(before), handle)))
                if after:
                    steps += self._index_add(after, handle, float(absolute), None)
                steps.append(_Cmd(("PEXPIREAT", self.pointer_key(handle), _ms(float(absolute)))))
                yield _Batch(tuple(steps), atomic=True)
                self._hints.remember(key, handle, after or None)
        return True

    def _rename(self, old_key: str, new_key: str, patch: Patch) -> _Steps[bool]:
        args = _patch_args(patch)
        now = patch.fields.get("last_seen_at")
        hint = self._hints.pop(old_key) if self.single_node else None
        guard = patch.expect_handle
        if hint is not None and guard is not None and hint[0] != guard:
            hint = None  # the script would rename whatever has the hinted handle
        if hint is not None:
            handle, user = hint
            new_user = patch.fields.get("user_id", user)
            keys = [self.record_key(old_key), self.record_key(new_key), self.pointer_key(handle)]
            if user:
                keys.append(self.user_key(user))
            if new_user:
                keys.append(self.user_key(new_user))
            result = yield _Eval(
                _RENAME,
                tuple(keys),
                (
                    handle,
                    user or "",
                    new_user or "",
                    new_key,
                    _num(now) if now is not None else "-inf",
                    *args,
                ),
            )
            if result == 1:
                self._hints.remember(new_key, handle, new_user)
                return True
            if result == 0:
                return False
        # Two steps (a cluster, or no usable hint): take the record off the old key, then
        # write it under the new one. See the module docstring for why this is safe.
        taken = yield _Eval(_TAKE, (self.record_key(old_key),), (guard or "", *args))
        if taken is None:
            return False
        before = taken[0] or None
        fields = list(taken[1:])
        moved = _decode(new_key, fields)
        if moved is None:  # not a record this store wrote: gone, like a missing one
            return False
        handle, after, absolute = moved.handle, moved.user_id, moved.absolute_at
        steps = self._put(new_key, fields, handle, moved.expires_at, absolute)
        if before is not None and before != after:
            steps.append(_Cmd(("ZREM", self.user_key(before), handle)))
        if after is not None:
            steps += self._index_add(after, handle, absolute, now)
        yield _Batch(tuple(steps), atomic=True)
        self._hints.remember(new_key, handle, after)
        return True

    def _delete(self, key: str) -> _Steps[bool]:
        hint = self._hints.pop(key) if self.single_node else None
        if hint is not None:
            handle, user = hint
            keys = [self.record_key(key), self.pointer_key(handle)]
            if user:
                keys.append(self.user_key(user))
            result = yield _Eval(_DELETE, tuple(keys), (handle, user or ""))
            if result != -1:
                return bool(result == 1)
        record = yield from self._take(key, "")
        return record is not None

    def _take(self, key: str, handle: str) -> _Steps[SessionRecord | None]:
        """Delete the record under ``key`` (if its handle is ``handle``, when given) and
        clean its pointer and index entry; return it."""
        taken = yield _Eval(_TAKE, (self.record_key(key),), (handle, *_NO_PATCH))
        if taken is None:
            return None
        record = _decode(key, list(taken[1:]))
        if record is None:
            return None
        steps = [_Cmd(("DEL", self.pointer_key(record.handle)))]
        if record.user_id is not None:
            steps.append(_Cmd(("ZREM", self.user_key(record.user_id), record.handle)))
        yield _Batch(tuple(steps), atomic=True)
        return record

    def _get_by_handle(self, handle: str) -> _Steps[SessionRecord | None]:
        key = yield _Cmd(("GET", self.pointer_key(handle)))
        if not key:
            return None
        record = yield from self._get(key)
        return record if record is not None and record.handle == handle else None

    def _delete_handle(self, handle: str) -> _Steps[SessionRecord | None]:
        for _ in range(3):  # follow the pointer if a rename moves the record meanwhile
            key = yield _Cmd(("GET", self.pointer_key(handle)))
            if not key:
                return None
            record = yield from self._take(key, handle)
            if record is not None:
                self._hints.pop(key)
                return record
            moved = yield _Cmd(("GET", self.pointer_key(handle)))
            if moved == key:
                return None
        return None

    def _list_user(self, user_id: str, now: float) -> _Steps[list[SessionRecord]]:
        idx = self.user_key(user_id)
        _, handles = yield _Batch(
            (_Cmd(("ZREMRANGEBYSCORE", idx, "-inf", _num(now))), _Cmd(("ZRANGE", idx, 0, -1)))
        )
        if not handles:
            return []
        keys = yield _Batch(tuple(_Cmd(("GET", self.pointer_key(h))) for h in handles))
        found = [(h, k) for h, k in zip(handles, keys, strict=True) if k]
        hashes = yield _Batch(tuple(_Cmd(("HGETALL", self.record_key(k))) for _, k in found))
        records: dict[str, SessionRecord] = {}
        for (handle, key), fields in zip(found, hashes, strict=True):
            record = _decode(key, fields)
            if record is not None and record.handle == handle and record.user_id == user_id:
                records[handle] = record
        stale = [(h, keys[i] or "") for i, h in enumerate(handles) if h not in records]
        if stale and self.single_node:
            # On a cluster the entry, the pointer and the record live in different slots,
            # so a stale entry cannot be told atomically from one being moved by a rename:
            # it stays until its deadline trims it (it is never listed meanwhile).
            yield _Batch(
                tuple(
                    _Eval(
                        _UNLINK,
                        (idx, self.pointer_key(h), self.record_key(k or "-")),
                        (h, k, user_id),
                    )
                    for h, k in stale
                )
            )
        live = [r for r in records.values() if r.expires_at > now]
        return sorted(live, key=lambda r: r.created_at)

    def _delete_user(self, user_id: str, except_handle: str | None) -> _Steps[int]:
        idx = self.user_key(user_id)
        handles = yield _Cmd(("ZRANGE", idx, 0, -1))
        targets = [h for h in handles if h != except_handle]
        deleted = 0
        for _ in range(3):  # chase sessions that a concurrent rename moved
            if not targets:
                break
            keys = yield _Batch(tuple(_Cmd(("GET", self.pointer_key(h))) for h in targets))
            found = [(h, k) for h, k in zip(targets, keys, strict=True) if k]
            if not found:
                break
            results = yield _Batch(
                tuple(
                    _Eval(_DROP_IF, (self.record_key(k),), ("user", user_id, h)) for h, k in found
                )
            )
            gone = [h for (h, _), r in zip(found, results, strict=True) if r]
            for _, k in found:
                self._hints.pop(k)
            deleted += len(gone)
            if gone:
                cleanup = [_Cmd(("ZREM", idx, *gone))]
                cleanup += [_Cmd(("DEL", self.pointer_key(h))) for h in gone]
                yield _Batch(tuple(cleanup), atomic=True)
            missed = [(h, k) for (h, k), r in zip(found, results, strict=True) if not r]
            if not missed:
                break
            now_keys = yield _Batch(tuple(_Cmd(("GET", self.pointer_key(h))) for h, _ in missed))
            targets = [h for (h, k), k2 in zip(missed, now_keys, strict=True) if k2 and k2 != k]
        return deleted

    def _purge(self, now: float, batch_size: int) -> _Steps[int]:
        """SCAN the records in small pages, resting after each step (``_PURGE_REST``): a
        purge uses at most half a core and half of the server, and requests that run
        meanwhile keep their latency (Redis' TTLs already reclaim ended sessions, so a
        purge is housekeeping, never urgent). Scripts go in small pipelines: Redis runs a
        client's pipelined commands back to back, so a long one would hold every other
        client's command behind it."""
        match = _escape_glob(self.prefix) + "s:*"
        cursor: Any = None
        total = 0
        page = min(batch_size, _PURGE_PAGE)
        while True:
            started = time.monotonic()
            cursor, keys = yield _ScanPage(match, page, cursor)
            if keys:
                # Read first, script only the records past their deadline: Redis' own TTL
                # has usually removed them already, so a page costs the server a TTL read
                # per key (an integer, as the TTL is the deadline), not a script run; the
                # script checks the deadline itself, atomically.
                ends = yield _Batch(tuple(_Cmd(("PEXPIRETIME", k)) for k in keys))
                due = _ms(now) + 1  # the TTL is the deadline rounded to a millisecond
                keys = [k for k, end in zip(keys, ends, strict=True) if 0 < int(end) <= due]
            yield _Pause(_PURGE_REST * (time.monotonic() - started))
            for first in range(0, len(keys), _PURGE_SCRIPTS):
                started = time.monotonic()
                chunk = keys[first : first + _PURGE_SCRIPTS]
                results = yield _Batch(
                    tuple(_Eval(_DROP_IF, (k,), ("expired", _num(now))) for k in chunk)
                )
                cleanup: list[_Cmd] = []
                for result in results:
                    if result:
                        handle, user = result
                        cleanup.append(_Cmd(("DEL", self.pointer_key(handle))))
                        if user:
                            cleanup.append(_Cmd(("ZREM", self.user_key(user), handle)))
                if cleanup:
                    yield _Batch(tuple(cleanup))
                    total += sum(1 for r in results if r)
                yield _Pause(_PURGE_REST * (time.monotonic() - started))
            if cursor is None:
                return total

    def _count(self, now: float) -> _Steps[int]:
        match = _escape_glob(self.prefix) + "s:*"
        cursor: Any = None
        total = 0
        while True:
            cursor, keys = yield _ScanPage(match, 1000, cursor)
            if keys:
                deadlines = yield _Batch(tuple(_Cmd(("HGET", k, "e")) for k in keys))
                total += sum(1 for d in deadlines if d is not None and float(d) > now)
            if cursor is None:
                return total

    def _stats(self, now: float, top: int, soon: float) -> _Steps[dict[str, Any]]:
        """One SCAN over the records: exact counts, no index trusted."""
        match = _escape_glob(self.prefix) + "s:*"
        cursor: Any = None
        active = expiring = 0
        users: Counter[str] = Counter()
        while True:
            cursor, keys = yield _ScanPage(match, 1000, cursor)
            if keys:
                rows = yield _Batch(tuple(_Cmd(("HMGET", k, "e", "m")) for k in keys))
                for deadline_text, text in rows:
                    m = _unpack(text) if text is not None else None
                    if m is None or deadline_text is None or float(deadline_text) <= now:
                        continue
                    deadline, user = float(deadline_text), m.get("u")
                    active += 1
                    expiring += float(deadline) <= now + soon
                    if user is not None:
                        users[user] += 1
            if cursor is None:
                return {
                    "active": active,
                    "expiring_soon": expiring,
                    "top_users": users.most_common(top),
                }

    def stats_sync(self, now: float, *, top: int = 10, soon: float = 300.0) -> dict[str, Any]:
        """For ``coatcheck stats``: live sessions, those ending within ``soon`` seconds,
        and the ``top`` users by number of live sessions."""
        return self._drive_sync(self._stats(now, top, soon))

    # -- lifecycle -----------------------------------------------------------------------
    def close_sync(self) -> None:
        self._sync.close()

    async def close(self) -> None:
        await self._async.close()
        self._sync.close()


def from_url(url: str) -> RedisStore:
    """Scheme-registry entry point for ``redis://``, ``rediss://``, ``redis+sentinel://``
    and ``redis+cluster://`` URLs."""
    return RedisStore.from_url(url)
