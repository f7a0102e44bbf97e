"""The Redis store's purge: SCAN the records in small pages and delete those past their
deadline, resting between pages so a purge never crowds out requests. A mixin of
``RedisStore`` (apart so each file stays readable); it uses the store's key names
(``prefix``, ``pointer_key``, ``user_key``) and ``single_node``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from coatcheck.stores.base import Procedure
from coatcheck.stores.redis.codec import ms, num, unpack
from coatcheck.stores.redis.operations import Batch, Cmd, Eval, Pause, ScanPage
from coatcheck.stores.redis.scan import escape_glob
from coatcheck.stores.redis.scripts import DROP_EXPIRED, DROP_IF

PURGE_REST = 1.0
"""A purge rests this many times as long as each step took: it keeps at most half a core
(and half of the server) busy. (Measured: resting three times as long did not lower the
readers' p99 during a purge, only lengthened the purge.)"""

PURGE_SCRIPTS = 16
"""Purge scripts per pipeline at most (each runs for some microseconds on the server)."""

PURGE_PAGE = 100
"""Keys per purge page at most. A page is one SCAN and one pipeline, whose packing and
replies take the client's CPU in one go: small pages keep each stall of an app's event
loop (a purge run as an in-app task) well under a request's latency."""


class RedisPurge:
    """``purge_expired``'s procedures, for ``RedisStore``."""

    prefix: str
    single_node: bool
    pointer_key: Callable[[str], str]
    """The store's key names (``RedisStore``'s methods)."""
    user_key: Callable[[str], str]

    def _purge(self, now: float, batch_size: int) -> Procedure[int]:
        """SCAN the records in small pages, resting after each page as long as it took
        (``PURGE_REST``): a purge uses at most half a core and half of the server, and
        requests that run meanwhile keep their latency (Redis' TTLs already reclaim ended
        sessions, so a purge is housekeeping, never urgent).

        A page costs the same round trips and one rest whatever the clocks say, plus one
        when records are due: one script for all of them (on a single node; a cluster's
        records are in many slots, so there each goes alone, ``PURGE_SCRIPTS`` per
        pipeline). Their pointers and index entries go with the next page's reads (or in
        one last pipeline). Records are due here but not yet for Redis when the app's
        clock runs ahead of the server's (the TTL is the deadline on the app's clock): then
        nearly every record is, and a page that paid two round trips and a rest per 16
        records cost several times a page with none."""
        match = escape_glob(self.prefix) + "s:*"
        cursor: Any = None
        total = 0
        page = min(batch_size, PURGE_PAGE)
        cleanup: list[Cmd] = []  # the previous page's pointers and index entries
        while True:
            started = time.monotonic()
            cursor, keys = yield ScanPage(match, page, cursor)
            if keys:
                # Read first, script only the records past their deadline: Redis' own TTL
                # has usually removed them already, so a page costs the server a TTL read
                # per key (an integer, as the TTL is the deadline), not a script run; the
                # script checks the deadline itself, atomically.
                reads = tuple(Cmd(("PEXPIRETIME", k)) for k in keys)
                replies = yield Batch((*cleanup, *reads))
                ends, cleanup = replies[len(cleanup) :], []
                due = ms(now) + 1  # the TTL is the deadline rounded to a millisecond
                keys = [k for k, end in zip(keys, ends, strict=True) if 0 < int(end) <= due]
            if keys:
                gone = yield from self._drop_expired(keys, now)
                total += len(gone)
                pointers = [self.pointer_key(handle) for handle, _ in gone]
                if not pointers:
                    pass
                elif self.single_node:  # one DEL for all (a cluster's keys are in many slots)
                    cleanup.append(Cmd(("DEL", *pointers)))
                else:
                    cleanup += [Cmd(("DEL", pointer)) for pointer in pointers]
                cleanup += [Cmd(("ZREM", self.user_key(u), h)) for h, u in gone if u]
            if cursor is None and cleanup:
                yield Batch(tuple(cleanup))
            yield Pause(PURGE_REST * (time.monotonic() - started))
            if cursor is None:
                return total

    def _drop_expired(self, keys: list[str], now: float) -> Procedure[list[tuple[str, str]]]:
        """Delete those of ``keys`` still past their deadline at ``now`` (checked
        atomically, record by record); the (handle, user) of each one deleted."""
        gone: list[tuple[str, str]] = []
        if self.single_node:
            for first in range(0, len(keys), PURGE_PAGE):
                page = tuple(keys[first : first + PURGE_PAGE])
                for text in (yield Eval(DROP_EXPIRED, page, (num(now),))):
                    m = unpack(text) or {}
                    gone.append((m.get("h", ""), m.get("u") or ""))
        else:
            for first in range(0, len(keys), PURGE_SCRIPTS):
                chunk = keys[first : first + PURGE_SCRIPTS]
                results = yield Batch(
                    tuple(Eval(DROP_IF, (k,), ("expired", num(now))) for k in chunk)
                )
                gone += [(handle, user) for handle, user in filter(None, results)]
        return [(h, u) for h, u in gone if h]
