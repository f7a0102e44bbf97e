"""The Lua scripts the Redis store runs, each with the SHA1 it is called by.

A script names every key it touches in KEYS (never building a key name inside Lua, which
would break on proxies and on a cluster), so each one runs on the node that holds its
keys. Scripts go by EVALSHA; a node whose script cache is empty (after a restart or a
failover) answers NOSCRIPT and the script is sent again by EVAL, which caches it
(``operations.command_args`` builds both commands, the drivers resend): nothing is
registered ahead of time, so a failover needs no re-registration step.

No I/O here: the sources and their SHA1s.
"""

from __future__ import annotations

import hashlib

# -- Lua ---------------------------------------------------------------------------------
# Shared helpers, prepended to every script. ``patch`` reads a delta from ARGV starting at
# ``i``: a count and the fields to delete, then a count and field/value pairs to set.
# ``unpack`` is chunked because Lua's C stack caps the number of arguments.
LUA_HELPERS = {
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


class Script:
    """A Lua script with its SHA1, run by EVALSHA with a fallback to EVAL."""

    __slots__ = ("sha", "text")

    def __init__(self, body: str, *uses: str) -> None:
        unknown = set(uses) - set(LUA_HELPERS)
        if unknown:
            raise ValueError(f"unknown Lua helpers: {sorted(unknown)}")
        helpers = "".join(text for name, text in LUA_HELPERS.items() if name in uses)
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
APPLY = Script(_APPLY_BODY, "meta", "patch", "ms", "expire")
APPLY_IF_HANDLE = Script(
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

TAKE = Script(
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

RENAME = Script(
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

DELETE = Script(
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

DROP_IF = Script(
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

DROP_EXPIRED = Script(
    """
-- Single node only (the records of a page are in many slots). KEYS: records. ARGV[1] now.
-- Deletes each record whose deadline (the earlier of 'e' and 'a') is at or before ARGV[1]
-- and returns the packed metadata of each one deleted, undecoded: the caller reads the
-- handle and user from it, so the server spends no time on JSON. A hash whose metadata
-- names no handle is not a record this store wrote, and is left alone (as DROP_IF does).
local now, out = tonumber(ARGV[1]), {}
for _, key in ipairs(KEYS) do
  local f = redis.call('HMGET', key, 'e', 'a', 'm')
  if f[1] and f[2] and f[3] and string.find(f[3], '"h":', 1, true)
      and math.min(tonumber(f[1]), tonumber(f[2])) <= now then
    redis.call('DEL', key)
    out[#out + 1] = f[3]
  end
end
return out
"""
)

UNLINK = Script(
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
