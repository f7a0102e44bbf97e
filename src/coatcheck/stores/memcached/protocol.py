"""The memcached store's wire side: a bounded pool of pymemcache clients, raw item access on
it, and the worker threads that carry the sync code for the async path.

Each of the three is fork-aware: a child process (a pre-forking server's worker) must
never talk on sockets it inherited, where its parent reads replies too and a reply read by
the wrong process is another user's session, and it inherits a thread pool object but none
of its threads. So each notices a changed process id and starts afresh.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pymemcache.client.base import Client  # type: ignore[import-untyped]
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheError,
    MemcacheUnexpectedCloseError,
)

from coatcheck.errors import StoreUnavailable
from coatcheck.stores.base import process_id
from coatcheck.stores.damage import warn
from coatcheck.stores.memcached.codec import (
    FETCH_CHUNK,
    NAME_PART,
    Doc,
    Entries,
    Names,
    chunks,
    exptime,
    read_doc,
    read_entries,
)

STORE = "memcached"

T = TypeVar("T")

_STALE_CONNECTION = (
    MemcacheUnexpectedCloseError,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)
"""Errors that mean a pooled connection died while idle (memcached restarted)."""


class Connections:
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
        """The child drops the inherited connections unclosed and opens its own."""
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


class Items:
    """Raw item access: one pymemcache call on a pooled connection per method, documents
    decoded, expiry computed against ``max_ttl``."""

    def __init__(self, pool: Connections, names: Names, max_ttl: float) -> None:
        self.pool = pool
        self.names = names
        self.max_ttl = max_ttl

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One pymemcache call (pymemcache is untyped: Any)."""
        return self.pool.run(lambda client: getattr(client, method)(*args, **kwargs))

    def exptime(self, deadline: float) -> int:
        return exptime(deadline, self.max_ttl)

    def load_doc(self, key: str) -> Doc | None:
        """The record's document, a tombstone document, or None (no item, or one damaged
        outside the store: skipped with a warning)."""
        raw = self.call("get", self.names.record(key))
        return None if raw is None else self.doc(raw)

    def doc(self, raw: bytes) -> Doc | None:
        """``raw`` as a record's or a tombstone's document; None, with a warning, for an
        item damaged outside the store."""
        doc = read_doc(raw)
        if isinstance(doc, str):
            warn(STORE, doc)
            return None
        return doc

    def entries(self, name: str, raw: bytes) -> Entries | None:
        """The entries of the index item ``name``; None, with a warning, for an item
        damaged outside the store (its readers then treat it as they must: see them)."""
        entries = read_entries(raw)
        if entries is None:
            warn(STORE, f"the index item {name!r} is not a list of entries")
        return entries

    def load_docs(self, keys: Iterable[str]) -> dict[str, Doc]:
        """Documents of the given keys that exist (tombstones included)."""
        names = {self.names.record(k): k for k in keys}
        found: dict[str, Doc] = {}
        for chunk in chunks(list(names), FETCH_CHUNK):
            values = self.call("get_many", chunk)
            for name, raw in values.items():
                doc = self.doc(raw)
                if doc is not None:
                    found[names[name]] = doc
        return found

    def delete(self, name: str) -> bool:
        return bool(self.call("delete", name))

    def follow(self, pointer: bytes) -> tuple[str, Doc] | None:
        """The live record a handle's pointer names, following one rename tombstone."""
        key = pointer.decode("utf-8", "replace")
        if not NAME_PART.fullmatch(key):
            warn(STORE, "a handle's pointer does not hold a key")
            return None
        doc = self.load_doc(key)
        if doc is not None and "moved_to" in doc:
            key = doc["moved_to"]
            doc = self.load_doc(key)
        if doc is None or "moved_to" in doc:
            return None
        return key, doc


class WorkerThreads:
    """The dedicated threads on which the async path runs the sync code (the package
    docstring says why there is no asyncio client), as many as there are connections.

    Bounded like the sync path's wait for a connection: at most ``max_queued`` calls wait
    for a thread (more fail at once with StoreUnavailable), and a call that waited longer
    than ``max_wait`` seconds fails without reaching the server when a thread takes it.
    While memcached hangs (each call holding a thread for the full ``timeout``) an event
    loop's requests thus cannot pile up without end, and the backlog drains at once when
    the wait is over instead of each old call paying another timeout.
    """

    def __init__(self, size: int, max_queued: int = 256, max_wait: float = 2.0) -> None:
        self.size = size
        self.max_queued = max_queued
        self.max_wait = max_wait
        self._executor = self._new()
        self._pid = process_id()
        self._lock = threading.Lock()
        self._pending = 0
        """Calls handed to the executor and not finished (running or waiting)."""

    def _new(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="coatcheck-memcached")

    def _finished(self, _: object) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker thread, awaited from the running loop."""
        if self._pid != process_id():
            # A forked child inherits the pool object but none of its threads: work sent
            # to it could wait forever for an "idle" thread that only exists in the parent.
            self._executor = self._new()
            self._pid = process_id()
            self._lock = threading.Lock()
            self._pending = 0
        with self._lock:
            if self._pending >= self.size + self.max_queued:
                raise StoreUnavailable(
                    f"memcached: {self.max_queued} calls already wait for the "
                    f"{self.size} worker threads (the server is slow or out)"
                )
            self._pending += 1
        queued = time.monotonic()
        max_wait = self.max_wait

        def bounded() -> T:
            if time.monotonic() - queued > max_wait:
                raise StoreUnavailable(
                    f"memcached: waited over {max_wait} s for a worker thread "
                    "(the server is slow or out)"
                )
            return fn(*args)

        try:
            future = self._executor.submit(bounded)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)  # also when cancelled before it ran
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)
