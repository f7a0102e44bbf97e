"""Connections of the PostgreSQL store: libpq settings, pools, and healing after a restart.

- **A bounded time, always.** Waiting for a pool connection is bounded by ``pool_timeout``;
  a statement by the server's ``statement_timeout``; a dead peer by TCP keepalives and
  ``tcp_user_timeout`` (``build_conninfo`` adds them unless the URL chose its own). None of
  those ends a wait on a server that is frozen (stopped, or behind a proxy that stopped
  forwarding): its kernel still acknowledges every packet and keepalive, and it enforces
  no statement timeout. So every wait for a reply is bounded on the client too
  (``reply_bound``, a little beyond the statement timeout): past it the connection is
  closed and the call fails, which the store reports as StoreUnavailable.
- **One async pool per event loop.** psycopg_pool's async pool belongs to the loop that
  opened it. Most apps run one loop; Django's async views under WSGI run each request on a
  new one (asgiref's ``async_to_sync``), whose pool goes when its loop does.
- **Recovering without a restart.** After a server restart every pooled connection is dead.
  The pool's own ``check`` hook would cost a round trip per checkout and sleeps with backoff
  after the second failed check, so instead a checkout polls the socket (no round trip): a
  server that hung up leaves the idle socket readable, and such a connection is discarded
  and replaced at once. A short ``reconnect_timeout`` lets waiting requests trigger fresh
  connection attempts instead of queueing behind a long backoff.
- **Fork safety.** A forked child must not touch its parent's sockets: it drops the pools
  it inherited (unclosed) and opens its own.
"""

from __future__ import annotations

import asyncio
import select
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from coatcheck.stores.base import process_id

SyncPool = ConnectionPool[psycopg.Connection[Any]]
AsyncPool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


def reply_bound(connect_timeout: float, statement_timeout: float) -> float:
    """Seconds a client waits for any reply of the server, and after which a dead peer is
    noticed: a little beyond the statement timeout, so that a live server's own timeout
    (a clean error, the connection kept) always comes first."""
    return max(statement_timeout, connect_timeout) + 2


class _Bounded:
    """What both connection classes add: each wait for the server ends after
    ``reply_timeout`` seconds (set by the pool's ``configure``), and then the connection,
    left half-way through the protocol, is closed so the pool replaces it."""

    reply_timeout: float | None = None

    def _timed_out(self, conn: Any, exc: psycopg.OperationalError) -> psycopg.OperationalError:
        if conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE:
            conn.pgconn.finish()
        return psycopg.OperationalError(
            f"no reply from the server within {self.reply_timeout} s "
            f"(frozen or unreachable): {exc or type(exc).__name__}"
        )


class BoundedConnection(_Bounded, psycopg.Connection[Any]):
    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        try:
            return super().wait(gen, interval, self.reply_timeout if timeout is None else timeout)
        except psycopg.errors._WaitTimeout as exc:  # (psycopg's own wait timeout)
            raise self._timed_out(self, exc) from exc


class BoundedAsyncConnection(_Bounded, psycopg.AsyncConnection[Any]):
    async def wait(  # psycopg's signature (noqa: its timeout is what we bound)
        self,
        gen: Any,
        interval: float = 0.1,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Any:
        try:
            return await super().wait(
                gen, interval, self.reply_timeout if timeout is None else timeout
            )
        except psycopg.errors._WaitTimeout as exc:
            raise self._timed_out(self, exc) from exc


def build_conninfo(conninfo: str, connect_timeout: float, statement_timeout: float) -> str:
    """libpq settings that bound every wait, unless the URL already chose them."""
    try:
        given = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"invalid PostgreSQL connection string: {exc}") from None
    # A dead peer: unacknowledged data fails after tcp_user_timeout, an idle wait for
    # a reply after the keepalive probes; both a little beyond the statement timeout.
    bound = reply_bound(connect_timeout, statement_timeout)
    extra: dict[str, Any] = {
        "connect_timeout": max(1, round(connect_timeout)),
        "application_name": "coatcheck",
        "keepalives": 1,
        "keepalives_idle": max(1, round(bound)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": int(bound * 1000),
    }
    extra = {k: v for k, v in extra.items() if k not in given}
    if statement_timeout > 0:
        setting = f"-c statement_timeout={int(statement_timeout * 1000)}"
        options = given.get("options")
        extra["options"] = f"{options} {setting}" if options else setting
    return make_conninfo(conninfo, **extra)


def _poll_readable(fd: int) -> bool:
    """Non-blocking: has the peer sent anything (data, FIN, RST) on ``fd``?"""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # pragma: no cover (Windows)
    return bool(readable)


def _hung_up(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """True when an idle pooled connection is closed or the server spoke on it.

    The server never speaks first on an idle connection except to end it (a FATAL
    "terminating connection" on shutdown, or EOF), so readable means "probably dead";
    callers then confirm with a real round trip.
    """
    if conn.closed:
        return True
    try:
        return _poll_readable(conn.fileno())
    except (psycopg.Error, OSError, ValueError):
        return True


@dataclass
class LoopState:
    """What the async side keeps per event loop: its pool, the lock that opens it, and the
    lock that lets one task of the loop run the migrations while the others wait."""

    pool: AsyncPool | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    migrate_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Pools:
    """One sync pool and one async pool per event loop, opened on first use.

    ``on_fork`` runs in a forked child when it first reaches for a pool, so the store can
    drop whatever else it must not share with its parent.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        name: str,
        min_size: int,
        max_size: int,
        timeout: float,
        reconnect_timeout: float,
        prepare_threshold: int | None,
        on_fork: Callable[[], None],
        reply_timeout: float | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.timeout = timeout
        self.kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": prepare_threshold}
        """Every connection's settings: autocommit, so a statement is its own transaction
        with no BEGIN/COMMIT round trips around it."""
        self._pool_kwargs: dict[str, Any] = {
            "kwargs": self.kwargs,
            "min_size": min_size,
            "max_size": max_size,
            "timeout": timeout,
            "reconnect_timeout": reconnect_timeout,
            "name": name,
            "open": False,
        }
        self.reply_timeout = reply_timeout
        """Every wait for a reply ends after this long (``reply_bound``; None: unbounded)."""
        self._on_fork = on_fork
        self._pid = process_id()
        self._lock = threading.Lock()
        self.sync: SyncPool | None = None
        self.loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopState] = (
            weakref.WeakKeyDictionary()
        )

    def _forked(self) -> bool:
        """A forked child must not touch its parent's sockets: start afresh."""
        if self._pid == process_id():
            return False
        self._pid = process_id()
        self.sync = None
        self.loops = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._on_fork()
        return True

    def _configure(self, conn: Any) -> None:
        """Each new connection of the pools: bound its waits for a reply."""
        conn.reply_timeout = self.reply_timeout

    async def _aconfigure(self, conn: Any) -> None:
        conn.reply_timeout = self.reply_timeout

    # -- the sync side -----------------------------------------------------------------
    def sync_pool(self) -> SyncPool:
        pool = self.sync
        if pool is not None and not self._forked():
            return pool
        with self._lock:
            pool = self.sync
            created = pool is None
            if pool is None:
                pool = self.sync = ConnectionPool(
                    self.conninfo,
                    connection_class=BoundedConnection,
                    configure=self._configure,
                    **self._pool_kwargs,
                )
                pool.open(wait=False)
        if created:
            # Wait for the first connections (bounded): otherwise the first request
            # finds the pool empty and makes it grow for nothing.
            try:
                pool.wait(timeout=self.timeout)
            except BaseException:
                with self._lock:  # wait() closed it; the next call starts afresh
                    if self.sync is pool:
                        self.sync = None
                raise
        return pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A live connection of the sync pool (a dead one is replaced, not handed out)."""
        pool = self.sync_pool()
        deadline = time.monotonic() + self.timeout
        while True:
            conn = pool.getconn(timeout=deadline - time.monotonic())
            if not _hung_up(conn):
                break
            try:
                conn.execute("")  # readable but maybe alive (a notice): ask for real
                break
            except psycopg.Error:
                conn.close()
                pool.putconn(conn)  # closed: the pool replaces it in the background
        try:
            yield conn
        finally:
            pool.putconn(conn)

    def close_sync(self) -> None:
        pool, self.sync = self.sync, None
        if pool is not None:
            pool.close()

    # -- the async side ----------------------------------------------------------------
    def loop_state(self) -> LoopState:
        loop = asyncio.get_running_loop()
        state = self.loops.get(loop)
        if state is None or self._forked():
            with self._lock:
                state = self.loops.setdefault(loop, LoopState())
        return state

    async def async_pool(self) -> AsyncPool:
        state = self.loop_state()
        pool = state.pool
        if pool is not None:
            return pool
        async with state.lock:
            pool = state.pool
            created = pool is None
            if pool is None:
                pool = state.pool = AsyncConnectionPool(
                    self.conninfo,
                    connection_class=BoundedAsyncConnection,
                    configure=self._aconfigure,
                    **self._pool_kwargs,
                )
                await pool.open(wait=False)
        if created:
            try:
                await pool.wait(timeout=self.timeout)
            except BaseException:
                if state.pool is pool:
                    state.pool = None
                raise
        return pool

    @asynccontextmanager
    async def aconnection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A live connection of the running loop's pool."""
        pool = await self.async_pool()
        deadline = time.monotonic() + self.timeout
        while True:
            conn = await pool.getconn(timeout=deadline - time.monotonic())
            if not _hung_up(conn):
                break
            try:
                await conn.execute("")
                break
            except psycopg.Error:
                await conn.close()
                await pool.putconn(conn)
        try:
            yield conn
        finally:
            await pool.putconn(conn)

    async def close(self) -> None:
        """Close the running loop's pool there, and the sync pool on a worker thread."""
        state = self.loops.pop(asyncio.get_running_loop(), None)
        if state is not None and state.pool is not None:
            await state.pool.close()
        if self.sync is not None:
            await asyncio.to_thread(self.close_sync)
