"""``Scannable`` for the Redis store: SCAN over the records' keys, one page a call, with a
cursor that survives the process (``coatcheck rekey`` keeps it in a file).

On one node (or behind Sentinel) the cursor is Redis' own number. A cluster's SCAN walks
one primary after another: there the cursor is the JSON list of the primaries still to
walk, each by its node name ("host:port") with its SCAN cursor, so it resumes on another
process too (a primary gone by then, after a failover, is walked again from its
replacement's start by a fresh run).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from typing import Any, TypeVar

from coatcheck.core.record import SessionRecord
from coatcheck.stores.base import Scannable
from coatcheck.stores.redis.codec import unpack
from coatcheck.stores.redis.operations import Batch, Cmd, Procedure, ScanPage

T = TypeVar("T")


def escape_glob(text: str) -> str:
    """``text`` matched literally in a SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RecordScan(Scannable):
    """The Redis store's walks over its records: a page of them (``scan_sync``) and the
    handles of one user's (``_scan_user``) (a mixin: the store gives the prefix, the
    topology, its driver and its decoding of a record's hash)."""

    prefix: str
    single_node: bool

    @abstractmethod
    def _drive_sync(self, steps: Procedure[T]) -> T: ...

    @staticmethod
    @abstractmethod
    def _decoded(key: str, fields: Any) -> SessionRecord | None: ...

    def scan_sync(self, cursor: str, count: int) -> tuple[list[SessionRecord], str | None]:
        start: Any
        if self.single_node:
            start = int(cursor) if cursor else None
        else:
            start = [(str(n), int(c)) for n, c in json.loads(cursor)] if cursor else None
        return self._drive_sync(self._scan_page(start, count))

    def _scan_page(
        self, cursor: Any, count: int
    ) -> Procedure[tuple[list[SessionRecord], str | None]]:
        match = escape_glob(self.prefix) + "s:*"
        after, keys = yield ScanPage(match, count, cursor)
        found = (
            (yield Batch(tuple(Cmd(("HGETALL", k)) for k in keys), lenient=True)) if keys else []
        )
        skip = len(self.prefix) + 2
        records = [self._decoded(k[skip:], f) for k, f in zip(keys, found, strict=True)]
        if after is None:
            following = None
        elif self.single_node:
            following = str(after)
        else:
            following = json.dumps([[getattr(n, "name", n), int(c)] for n, c in after])
        return [r for r in records if r is not None], following

    def _scan_user(self, user_id: str) -> Procedure[list[str]]:
        """The handles of every record of ``user_id``, by one SCAN over the records."""
        match = escape_glob(self.prefix) + "s:*"
        cursor: Any = None
        handles: list[str] = []
        while True:
            cursor, keys = yield ScanPage(match, 1000, cursor)
            if keys:
                texts = yield Batch(tuple(Cmd(("HGET", k, "m")) for k in keys), lenient=True)
                for text in texts:
                    m = unpack(text) if isinstance(text, str) else None
                    if m is not None and m.get("u") == user_id and isinstance(m["h"], str):
                        handles.append(m["h"])
            if cursor is None:
                return handles
