"""RedisStore: the store contract, each operation written once as a procedure.

A procedure (``_get``, ``_apply``, ``_rename``, ...) is a generator of Redis operations
(``operations.py``), run by ``coatcheck.core.steps`` with the sync driver for ``*_sync``
and the async driver for the coroutines (``drivers.py``), so the two paths share every
step and every decision between steps. The layout, the round trips and why the indexes
cannot leak are the package docstring's.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, TypeVar

from coatcheck.core.record import Patch, SessionRecord
from coatcheck.core.steps import drive_async, drive_sync
from coatcheck.stores.base import (
    ProcedureCountable,
    ProcedureHandleIndex,
    ProcedureLockable,
    ProcedurePurgeable,
    ProcedureUserIndex,
    Statistics,
)
from coatcheck.stores.damage import sound, warn
from coatcheck.stores.redis.codec import (
    NO_PATCH,
    decode,
    ms,
    num,
    patch_args,
    record_fields,
    unpack,
)
from coatcheck.stores.redis.drivers import AsyncDriver, SyncDriver
from coatcheck.stores.redis.hints import Hints
from coatcheck.stores.redis.operations import (
    WRONG_TYPE,
    Batch,
    Cmd,
    Eval,
    Procedure,
    ScanPage,
)
from coatcheck.stores.redis.options import RedisOptions
from coatcheck.stores.redis.purge import RedisPurge
from coatcheck.stores.redis.scan import RecordScan, escape_glob
from coatcheck.stores.redis.scripts import (
    APPLY,
    APPLY_IF_HANDLE,
    DELETE,
    DROP_IF,
    RELEASE_LOCK,
    RENAME,
    TAKE,
    UNLINK,
)

T = TypeVar("T")

STORE = "Redis"


def _sound(key: str, fields: Any) -> SessionRecord | None:
    """The record of a hash read under ``key``: None for no key, and (with a warning) for
    a key damaged outside the store (another type, or a hash this store did not write)."""
    if fields is WRONG_TYPE:
        warn(STORE, "the record's key is not a hash")
        return None
    if not fields:
        return None
    record = decode(key, fields)
    if record is None:
        warn(STORE, "the record's hash is not what coatcheck writes")
        return None
    return sound(record, STORE)


def _deadline(text: Any) -> float | None:
    """A deadline field's value as a number; None when missing or damaged."""
    if not isinstance(text, str):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class RedisStore(
    RedisPurge,
    ProcedureHandleIndex,
    ProcedureUserIndex,
    ProcedurePurgeable,
    ProcedureCountable,
    Statistics,
    ProcedureLockable,
    RecordScan,
):
    """Sessions in Redis (see the package docstring for the layout and its guarantees).

    Build it from a URL (``RedisStore.from_url("redis://localhost:6379/0")``) or from
    ``RedisOptions``. Connections open lazily, on first use.
    """

    _decoded = staticmethod(_sound)

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self.prefix = options.prefix
        self.single_node = options.mode != "cluster"
        self._sync = SyncDriver(options)
        self._async = AsyncDriver(options)
        self._hints = Hints(8192 if self.single_node else 0)  # a cluster cannot use them

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

    def lock_key(self, key: str) -> str:
        """A session's lock: inside the prefix (ACL key patterns, clean-up by prefix).
        Every lock command names this one key alone, so on a cluster it needs no slot in
        common with the record."""
        return f"{self.prefix}l:{key}"

    # -- drivers -------------------------------------------------------------------------
    def _drive_sync(self, steps: Procedure[T]) -> T:
        return drive_sync(steps, self._sync.run)

    async def _drive_async(self, steps: Procedure[T]) -> T:
        return await drive_async(steps, self._async.run)

    # -- procedures, each written once -----------------------------------------------------
    def _index_add(
        self, user_id: str, handle: str, absolute: float, now: float | None
    ) -> list[Cmd]:
        """Commands that add ``handle`` to the user's index and keep the index's own TTL
        at its latest deadline (mirrors the Lua ``index_add``)."""
        idx = self.user_key(user_id)
        at = ms(absolute)
        cmds = [] if now is None else [Cmd(("ZREMRANGEBYSCORE", idx, "-inf", num(now)))]
        cmds += [
            Cmd(("ZADD", idx, num(absolute), handle)),
            Cmd(("PEXPIREAT", idx, at, "NX")),
            Cmd(("PEXPIREAT", idx, at, "GT")),
        ]
        return cmds

    def _put(
        self, key: str, fields: list[str], handle: str, expires: float, absolute: float
    ) -> list[Cmd]:
        """Commands that write a whole record under ``key`` with its pointer and TTL."""
        rec = self.record_key(key)
        return [
            Cmd(("DEL", rec)),
            Cmd(("HSET", rec, *fields)),
            Cmd(("PEXPIREAT", rec, ms(min(expires, absolute)))),
            Cmd(("SET", self.pointer_key(handle), key, "PXAT", ms(absolute))),
        ]

    def _get(self, key: str) -> Procedure[SessionRecord | None]:
        return self._got(key, (yield self._read(key)))

    def _read(self, key: str) -> Cmd:
        """The load's one command."""
        return Cmd(("HGETALL", self.record_key(key)), lenient=True)

    def _got(self, key: str, fields: Any) -> SessionRecord | None:
        """What the load makes of the reply to ``_read``."""
        record = _sound(key, fields)
        if record is not None:
            self._hints.remember(key, record.handle, record.user_id)
        return record

    # The load is the one store call of nearly every request: ``_get``'s two halves run
    # straight on the driver, without a generator and its driver loop around one command.
    def get_sync(self, key: str) -> SessionRecord | None:
        return self._got(key, self._sync.run(self._read(key)))

    async def get(self, key: str) -> SessionRecord | None:
        return self._got(key, await self._async.run(self._read(key)))

    def _create(self, record: SessionRecord) -> Procedure[None]:
        steps = self._put(
            record.key,
            record_fields(record),
            record.handle,
            record.expires_at,
            record.absolute_at,
        )
        if record.user_id is not None:
            steps += self._index_add(
                record.user_id, record.handle, record.absolute_at, record.last_seen_at
            )
        yield Batch(tuple(steps), atomic=True)
        self._hints.remember(record.key, record.handle, record.user_id)

    def _apply(self, key: str, patch: Patch) -> Procedure[bool]:
        fields = patch.fields
        # The TTL follows the deadline in force, min(expires_at, absolute_at). The policy
        # never sets expires_at past absolute_at, so a patch that moves expires_at (every
        # touch) sets the TTL to it, and the script reads no field for it; a patch that
        # moves only absolute_at (rare) has the script compute it from both.
        expires = fields.get("expires_at")
        absolute = fields.get("absolute_at")
        ttl = ""
        if expires is not None:
            ttl = str(ms(expires if absolute is None else min(expires, absolute)))
        elif absolute is not None:
            ttl = "*"
        reindex = "user_id" in fields or absolute is not None
        args = (ttl, "1" if reindex else "0", *patch_args(patch))
        guard = patch.expect_handle
        if guard is None:
            result = yield Eval(APPLY, (self.record_key(key),), args)
        else:
            result = yield Eval(APPLY_IF_HANDLE, (self.record_key(key),), (*args, guard))
        if not result:
            self._hints.pop(key)
            return False
        if isinstance(result, list):
            # Rare (the manager changes users only by renaming): keep the indexes in step.
            _, handle, before, after, absolute = result
            if handle:
                steps: list[Cmd] = []
                if before and before != after:
                    steps.append(Cmd(("ZREM", self.user_key(before), handle)))
                if after:
                    steps += self._index_add(after, handle, float(absolute), None)
                steps.append(Cmd(("PEXPIREAT", self.pointer_key(handle), ms(float(absolute)))))
                yield Batch(tuple(steps), atomic=True)
                self._hints.remember(key, handle, after or None)
        return True

    def _rename(self, old_key: str, new_key: str, patch: Patch) -> Procedure[bool]:
        guard = patch.expect_handle
        if self.single_node:
            # One atomic script, always: it must name the handle pointer and the user's
            # index, so without a hint (another process loaded the record, or the 8,192
            # hints moved on) the record's (handle, user) is read first, and the script
            # checks it still holds. The two-step path's gap (the record under neither
            # key) would let a revocation that runs inside it miss the session.
            hint = self._hints.pop(old_key)
            for _ in range(3):  # a stale hint: read it afresh (a user changed meanwhile)
                if hint is None or (guard is not None and hint[0] != guard):
                    hint = yield from self._identity(old_key)
                    if hint is None or (guard is not None and hint[0] != guard):
                        return False  # no record, or not the one the patch is meant for
                result = yield from self._rename_script(old_key, new_key, patch, hint)
                if result != -1:
                    return bool(result == 1)
                hint = None
        # Two steps (a cluster, or a single node whose record kept changing user under
        # three reads): take the record off the old key, then write it under the new one.
        # See the package docstring for why this is safe.
        now = patch.fields.get("last_seen_at")
        taken = yield Eval(TAKE, (self.record_key(old_key),), (guard or "", *patch_args(patch)))
        if taken is None:
            return False
        before = taken[0] or None
        fields = list(taken[1:])
        moved = decode(new_key, fields)
        if moved is None:  # not a record this store wrote: gone, like a missing one
            return False
        handle, after, absolute = moved.handle, moved.user_id, moved.absolute_at
        steps = self._put(new_key, fields, handle, moved.expires_at, absolute)
        if before is not None and before != after:
            steps.append(Cmd(("ZREM", self.user_key(before), handle)))
        if after is not None:
            steps += self._index_add(after, handle, absolute, now)
        yield Batch(tuple(steps), atomic=True)
        self._hints.remember(new_key, handle, after)
        return True

    def _identity(self, key: str) -> Procedure[tuple[str, str | None] | None]:
        """The (handle, user) of the record under ``key`` as it is now (one HGET), or None
        when there is none this store wrote."""
        text = yield Cmd(("HGET", self.record_key(key), "m"))
        packed = unpack(text) if text else None
        if packed is None:
            return None
        return packed["h"], packed.get("u") or None

    def _rename_script(
        self, old_key: str, new_key: str, patch: Patch, hint: tuple[str, str | None]
    ) -> Procedure[int]:
        """The single-node RENAME script for a record believed to be (handle, user):
        1 renamed, 0 no such record, -1 the belief was stale (nothing changed)."""
        handle, user = hint
        new_user = patch.fields.get("user_id", user)
        now = patch.fields.get("last_seen_at")
        keys = [self.record_key(old_key), self.record_key(new_key), self.pointer_key(handle)]
        if user:
            keys.append(self.user_key(user))
        if new_user:
            keys.append(self.user_key(new_user))
        args = (
            handle,
            user or "",
            new_user or "",
            new_key,
            num(now) if now is not None else "-inf",
            *patch_args(patch),
        )
        result = yield Eval(RENAME, tuple(keys), args)
        if result == 1:
            self._hints.remember(new_key, handle, new_user)
        return int(result)

    def _delete(self, key: str) -> Procedure[bool]:
        hint = self._hints.pop(key) if self.single_node else None
        if hint is not None:
            handle, user = hint
            keys = [self.record_key(key), self.pointer_key(handle)]
            if user:
                keys.append(self.user_key(user))
            result = yield Eval(DELETE, tuple(keys), (handle, user or ""))
            if result != -1:
                return bool(result == 1)
        record = yield from self._take(key, "")
        return record is not None

    def _take(self, key: str, handle: str) -> Procedure[SessionRecord | None]:
        """Delete the record under ``key`` (if its handle is ``handle``, when given) and
        clean its pointer and index entry; return it."""
        taken = yield Eval(TAKE, (self.record_key(key),), (handle, *NO_PATCH))
        if taken is None:
            return None
        record = decode(key, list(taken[1:]))
        if record is None:
            return None
        steps = [Cmd(("DEL", self.pointer_key(record.handle)))]
        if record.user_id is not None:
            steps.append(Cmd(("ZREM", self.user_key(record.user_id), record.handle)))
        yield Batch(tuple(steps), atomic=True)
        return record

    def _get_by_handle(self, handle: str) -> Procedure[SessionRecord | None]:
        key = yield Cmd(("GET", self.pointer_key(handle)), lenient=True)
        if not isinstance(key, str) or not key:  # (a pointer of another type: damaged)
            return None
        record = yield from self._get(key)
        return record if record is not None and record.handle == handle else None

    def _delete_handle(self, handle: str) -> Procedure[SessionRecord | None]:
        for _ in range(3):  # follow the pointer if a rename moves the record meanwhile
            key = yield Cmd(("GET", self.pointer_key(handle)), lenient=True)
            if not isinstance(key, str) or not key:
                return None
            record = yield from self._take(key, handle)
            if record is not None:
                self._hints.pop(key)
                return record
            moved = yield Cmd(("GET", self.pointer_key(handle)))
            if moved == key:
                return None
        return None

    def _list_user(self, user_id: str, now: float) -> Procedure[list[SessionRecord]]:
        idx = self.user_key(user_id)
        _, handles = yield Batch(
            (Cmd(("ZREMRANGEBYSCORE", idx, "-inf", num(now))), Cmd(("ZRANGE", idx, 0, -1))),
            lenient=True,
        )
        if handles is WRONG_TYPE:
            warn(STORE, "a user's index is not a sorted set; it lists no session")
            return []
        if not handles:
            return []
        got = yield Batch(tuple(Cmd(("GET", self.pointer_key(h))) for h in handles), lenient=True)
        keys = [k if isinstance(k, str) else None for k in got]  # (another type: damaged)
        found = [(h, k) for h, k in zip(handles, keys, strict=True) if k]
        hashes = yield Batch(
            tuple(Cmd(("HGETALL", self.record_key(k))) for _, k in found), lenient=True
        )
        records: dict[str, SessionRecord] = {}
        for (handle, key), fields in zip(found, hashes, strict=True):
            record = _sound(key, fields)
            if record is not None and record.handle == handle and record.user_id == user_id:
                records[handle] = record
        stale = [(h, keys[i] or "") for i, h in enumerate(handles) if h not in records]
        if stale and self.single_node:
            # On a cluster the entry, the pointer and the record live in different slots,
            # so a stale entry cannot be told atomically from one being moved by a rename:
            # it stays until its deadline trims it (it is never listed meanwhile).
            yield Batch(
                tuple(
                    Eval(
                        UNLINK,
                        (idx, self.pointer_key(h), self.record_key(k or "-")),
                        (h, k, user_id),
                    )
                    for h, k in stale
                )
            )
        live = [r for r in records.values() if r.expires_at > now]
        return sorted(live, key=lambda r: r.created_at)

    def _delete_user(self, user_id: str, except_handle: str | None) -> Procedure[int]:
        idx = self.user_key(user_id)
        handles = yield Cmd(("ZRANGE", idx, 0, -1), lenient=True)
        if handles is WRONG_TYPE:
            # A revocation must not miss a session because its index is unreadable: find
            # the user's records by a scan, and drop the index (their next login makes a
            # new one).
            warn(STORE, "a user's index is not a sorted set; its sessions are found by a scan")
            yield Cmd(("DEL", idx))
            handles = yield from self._scan_user(user_id)
        targets = [h for h in handles if h != except_handle]
        deleted = 0
        for _ in range(3):  # chase sessions that a concurrent rename moved
            if not targets:
                break
            keys = yield Batch(
                tuple(Cmd(("GET", self.pointer_key(h))) for h in targets), lenient=True
            )
            found = [(h, k) for h, k in zip(targets, keys, strict=True) if isinstance(k, str) and k]
            if not found:
                break
            results = yield Batch(
                tuple(Eval(DROP_IF, (self.record_key(k),), ("user", user_id, h)) for h, k in found)
            )
            gone = [h for (h, _), r in zip(found, results, strict=True) if r]
            for _, k in found:
                self._hints.pop(k)
            deleted += len(gone)
            if gone:
                cleanup = [Cmd(("ZREM", idx, *gone))]
                cleanup += [Cmd(("DEL", self.pointer_key(h))) for h in gone]
                yield Batch(tuple(cleanup), atomic=True)
            missed = [(h, k) for (h, k), r in zip(found, results, strict=True) if not r]
            if not missed:
                break
            now_keys = yield Batch(
                tuple(Cmd(("GET", self.pointer_key(h))) for h, _ in missed), lenient=True
            )
            targets = [
                h
                for (h, k), k2 in zip(missed, now_keys, strict=True)
                if isinstance(k2, str) and k2 and k2 != k
            ]
        return deleted

    def _count(self, now: float) -> Procedure[int]:
        match = escape_glob(self.prefix) + "s:*"
        cursor: Any = None
        total = 0
        while True:
            cursor, keys = yield ScanPage(match, 1000, cursor)
            if keys:
                deadlines = yield Batch(tuple(Cmd(("HGET", k, "e")) for k in keys), lenient=True)
                for text in deadlines:
                    deadline = _deadline(text)  # (damaged: not counted)
                    total += deadline is not None and deadline > now
            if cursor is None:
                return total

    def _stats(self, now: float, top: int, soon: float) -> Procedure[dict[str, Any]]:
        """One SCAN over the records: exact counts, no index trusted."""
        match = escape_glob(self.prefix) + "s:*"
        cursor: Any = None
        active = expiring = 0
        users: Counter[str] = Counter()
        while True:
            cursor, keys = yield ScanPage(match, 1000, cursor)
            if keys:
                rows = yield Batch(tuple(Cmd(("HMGET", k, "e", "m")) for k in keys), lenient=True)
                for row in rows:
                    if row is WRONG_TYPE:  # damaged: not counted
                        continue
                    deadline_text, text = row
                    m = unpack(text) if text is not None else None
                    deadline = _deadline(deadline_text)
                    if m is None or deadline is None or deadline <= now:
                        continue
                    user = m.get("u")
                    active += 1
                    expiring += deadline <= now + soon
                    if isinstance(user, str):
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

    def _acquire_lock(self, key: str, owner: str, now: float, lease: float) -> Procedure[bool]:
        """``SET lock owner NX PX lease``: one command, and the lease is Redis' own TTL
        (``now`` is not needed), so a crashed holder's lock vanishes by itself."""
        lease_ms = max(1, round(lease * 1000))
        taken = yield Cmd(("SET", self.lock_key(key), owner, "NX", "PX", lease_ms))
        return bool(taken)

    def _release_lock(self, key: str, owner: str) -> Procedure[bool]:
        """Compare and delete, in one script: never the lock of a successor."""
        released = yield Eval(RELEASE_LOCK, (self.lock_key(key),), (owner,))
        return bool(released)

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
