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
-- nil for no record, and for one damaged outside the store (not a hash, "m" not a JSON
-- object): every script then answers as for a missing record, never with an error.
local function meta(key)
  local text = redis.pcall('HGET', key, 'm')
  if type(text) ~= 'string' then return nil end
  local ok, m = pcall(cjson.decode, text)
  if ok and type(m) == 'table' then return m end
  return nil
end
""",
    "operate": r"""
-- The atomic operations of a patch (coatcheck.core.atomic), worked out on the stored JSON
-- texts before anything is written: {field = new text} and the fields in order. A type
-- clash raises the error reply the store turns into OperationTypeError (nothing written).
-- (Its helpers are made inside it: a script's every top-level function is a closure made
-- anew on each call, and most commits carry no operation.)
local function operate(key, argv, o, n)
  local SAFE = 9007199254740991
  local function kind_of(text)
    local c = string.sub(text, 1, 1)
    if c == '"' then return 'a string' elseif c == '{' then return 'an object'
    elseif c == '[' then return 'a list' elseif c == 't' or c == 'f' then return 'a bool'
    elseif c == 'n' then return 'null' elseif string.find(text, '[.eE]') then return 'a float' end
    return 'an integer'
  end
  local function clash(what, kind, detail, field)
    local where = kind .. '|' .. detail .. '|' .. string.sub(field, 3)
    error({err = 'COATCHECK ' .. what .. '|' .. where})
  end
  local results, order = {}, {}
  for j = o, o + 3 * (n - 1), 3 do
    local kind, field, arg = argv[j], argv[j + 1], argv[j + 2]
    local text = results[field]
    if text == nil then
      text = redis.call('HGET', key, field)
      order[#order + 1] = field
    end
    if kind == 'swap' then
      -- The store wrapper's compare-and-set: ARG is the expected text ('' for missing),
      -- a NUL, the new text; another stored text refuses the patch (nothing written).
      local cut = string.find(arg, '\0', 1, true)
      local want = string.sub(arg, 1, cut - 1)
      if (want == '' and text) or (want ~= '' and text ~= want) then
        clash('swap', kind, '-', field)
      end
      results[field] = string.sub(arg, cut + 1)
    elseif kind == 'incr' then
      local current = 0
      if text then
        if not string.match(text, '^%-?%d+$') then clash('clash', kind, kind_of(text), field) end
        current = tonumber(text)
        if math.abs(current) > SAFE then clash('clash', kind, kind_of(text), field) end
      end
      local r = current + tonumber(arg)
      if math.abs(r) > SAFE then clash('beyond', kind, string.format('%.0f', r), field) end
      if r == 0 then r = 0 end
      results[field] = string.format('%.0f', r)
    else
      if not text then text = '[]' end
      if string.sub(text, 1, 1) ~= '[' then clash('clash', kind, kind_of(text), field) end
      local present = false
      if kind == 'add_to_set' then
        local want = cjson.decode(arg)
        for _, item in ipairs(cjson.decode(text)) do
          if item == want then present = true; break end
        end
      end
      if not present then
        if text == '[]' then text = '[' .. arg .. ']'
        else text = string.sub(text, 1, -2) .. ',' .. arg .. ']' end
      end
      results[field] = text
    end
  end
  return results, order
end
""",
    "measure": r"""
-- The size the store checks for the byte limit, kept up to date in the field "s" as the
-- sum over the data of (key's JSON text + value's JSON text + 2): the data's compact JSON
-- text ({"key":value,...}) is that plus one (two when empty). A record without "s" (one
-- written before it existed) is measured once, from all its fields.
local function key_bytes(field)
  local k = string.sub(field, 3)
  if not string.find(k, '[%z\1-\31"\\]') then return #k + 2 end
  local extra = 0
  for c in string.gmatch(k, '[%z\1-\31"\\]') do
    if c == '"' or c == '\\' or c == '\b' or c == '\f' or c == '\n' or c == '\r' or c == '\t'
    then extra = extra + 1 else extra = extra + 5 end
  end
  return #k + 2 + extra
end
local function measured(key)
  local all = redis.call('HGETALL', key)
  local t = 0
  for j = 1, #all, 2 do
    if string.sub(all[j], 1, 2) == 'd:' then t = t + key_bytes(all[j]) + #all[j + 1] + 2 end
  end
  return t
end
local function resized(key, t, field, bytes)
  local old = redis.call('HSTRLEN', key, field)
  if old > 0 then t = t - key_bytes(field) - old - 2 end
  if bytes then t = t + key_bytes(field) + bytes + 2 end
  return t
end
""",
    "patch": """
-- Applies a delta read from ARGV at i: plain fields to delete, plain field/value pairs (data
-- and the deadlines), packed metadata names to delete, packed name/value pairs, atomic
-- operations (kind, field, argument), the byte limit ('' for none). The operations and the
-- limit are checked before anything is written, so a refused patch changes nothing; then
-- ``moving`` (when given) runs and returns the key to write to (a rename). Only a delta
-- that touches the packed metadata decodes it (cjson; its values are strings).
local function patch(key, argv, i, moving)
  local nd = tonumber(argv[i])
  local d0 = i + 1
  i = d0 + nd
  local ns = tonumber(argv[i])
  local s0 = i + 1
  i = s0 + 2 * ns
  local drop = tonumber(argv[i])
  local m0 = i + 1
  i = m0 + drop
  local set = tonumber(argv[i])
  local p0 = i + 1
  i = p0 + 2 * set
  local no = tonumber(argv[i])
  local o0 = i + 1
  i = o0 + 3 * no
  local limit = argv[i]
  local results, order = {}, {}
  if no > 0 then results, order = operate(key, argv, o0, no) end
  local t = false
  if nd + ns + no > 0 then
    t = redis.call('HGET', key, 's')
    if t then t = tonumber(t) elseif limit ~= '' then t = measured(key) end
  end
  if t then
    local changed = no > 0 or nd > 0
    for j = d0, d0 + nd - 1 do t = resized(key, t, argv[j], nil) end
    for j = s0, s0 + 2 * ns - 2, 2 do
      if string.sub(argv[j], 1, 2) == 'd:' then
        t = resized(key, t, argv[j], #argv[j + 1])
        changed = true
      end
    end
    for _, field in ipairs(order) do t = resized(key, t, field, #results[field]) end
    if not changed then
      t = false
    elseif limit ~= '' and (ns > 0 or no > 0) and math.max(t + 1, 2) > tonumber(limit) then
      local sizes = string.format('%d', math.max(t + 1, 2)) .. '|' .. limit
      error({err = 'COATCHECK large|' .. sizes})
    end
  end
  if moving then key = moving() end
  local first, last = d0, d0 + nd - 1
  while first <= last do
    local stop = math.min(first + 999, last)
    redis.call('HDEL', key, unpack(argv, first, stop))
    first = stop + 1
  end
  first, last = s0, s0 + 2 * ns - 1
  while first <= last do
    local stop = math.min(first + 1999, last)
    redis.call('HSET', key, unpack(argv, first, stop))
    first = stop + 1
  end
  for _, field in ipairs(order) do redis.call('HSET', key, field, results[field]) end
  if t then redis.call('HSET', key, 's', string.format('%d', t)) end
  if drop + set > 0 then
    local m = meta(key)
    for j = m0, m0 + drop - 1 do m[argv[j]] = nil end
    for j = p0, p0 + 2 * set - 1, 2 do m[argv[j]] = argv[j + 1] end
    redis.call('HSET', key, 'm', cjson.encode(m))
  end
  return i + 1
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
APPLY = Script(_APPLY_BODY, "meta", "operate", "measure", "patch", "ms", "expire")
APPLY_IF_HANDLE = Script(
    _APPLY_BODY.replace(
        _APPLY_EXISTS,
        "-- Guarded (Patch.expect_handle): the record's handle is the last ARGV.\n"
        "local g = meta(KEYS[1])\n"
        "if not g or g.h ~= ARGV[#ARGV] then return 0 end\n",
    ),
    "meta",
    "operate",
    "measure",
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
    "operate",
    "measure",
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
patch(KEYS[1], ARGV, 6, function()
  redis.call('RENAME', KEYS[1], KEYS[2])
  return KEYS[2]
end)
local absolute = redis.call('HGET', KEYS[2], 'a')
expire(KEYS[2])
redis.call('SET', KEYS[3], ARGV[4], 'PXAT', ms(absolute))
if ARGV[2] ~= '' and ARGV[2] ~= ARGV[3] then redis.call('ZREM', KEYS[4], ARGV[1]) end
if ARGV[3] ~= '' then index_add(KEYS[#KEYS], ARGV[1], absolute, ARGV[5]) end
return 1
""",
    "meta",
    "operate",
    "measure",
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
if not m or type(m.h) ~= 'string' then return false end
local h, u = m.h, m.u or ''
if type(u) ~= 'string' then u = '' end
if ARGV[1] == 'user' then
  if u ~= ARGV[2] or h ~= ARGV[3] then return false end
else
  local ea = redis.call('HMGET', KEYS[1], 'e', 'a')
  local e, a = tonumber(ea[1]), tonumber(ea[2])
  -- (a damaged deadline: left to the key's own TTL)
  if not e or not a or math.min(e, a) > tonumber(ARGV[2]) then return false end
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
  -- A key of another type, or deadlines that are not numbers, is not a record this store
  -- wrote (damaged outside it): left alone, as every reader leaves it.
  if redis.call('TYPE', key).ok == 'hash' then
    local f = redis.call('HMGET', key, 'e', 'a', 'm')
    local e, a = tonumber(f[1] or ''), tonumber(f[2] or '')
    if e and a and f[3] and string.find(f[3], '"h":', 1, true) and math.min(e, a) <= now then
      redis.call('DEL', key)
      out[#out + 1] = f[3]
    end
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

RELEASE_LOCK = Script(
    """
-- KEYS[1] a session's lock. ARGV[1] its holder's owner value. Deletes the lock only if
-- that holder still has it (its lease may have ended and another taken it). Returns 1/0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)
