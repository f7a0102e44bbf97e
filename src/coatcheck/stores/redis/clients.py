"""redis-py clients built from ``RedisOptions``, and the kept connections beside them.

Clients: one function builds the sync and the asyncio client alike, from a table of the
redis-py classes each one uses (``SYNC``, ``ASYNC``), so the two paths cannot be set up
differently (a timeout, TLS, the retry of a dropped connection).

Kept connections. A request's own commands (the load, the commit's script) skip redis-py's
client layer: on a single node (standalone or Sentinel) they go straight to a connection
the driver keeps. The client layer's pool bookkeeping, per-command observability and
timeout wrappers cost a fifth to a third of a loopback round trip (measured: a GET through
the client 98 µs, through a kept connection 79 µs async; 114 against 80 sync). redis-py
still connects (finding the master on Sentinel), sends, parses, decodes and maps server
errors to exceptions; the command itself is packed by hiredis directly (``packed``). A
command that failed other than by a server's error reply leaves its connection closed
(``roundtrip_sync``), to reconnect on its next use.
Pipelines, SCAN and the cluster go through the client (``exchange.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
from redis.exceptions import ResponseError

from coatcheck.stores.redis.options import RedisOptions

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with the redis extra
    _hiredis_pack = None


@dataclass(frozen=True, slots=True)
class Flavour:
    """The redis-py classes of one path, sync or asyncio (annotated ``Any``: redis-py
    leaves a few constructors unannotated)."""

    retry: Any
    cluster: Any
    cluster_node: Any
    sentinel: Any
    pool: Any
    connection: Any
    ssl_connection: Any
    client: Any


SYNC = Flavour(
    retry=redis.retry.Retry,
    cluster=redis.cluster.RedisCluster,
    cluster_node=redis.cluster.ClusterNode,
    sentinel=redis.sentinel.Sentinel,
    pool=redis.ConnectionPool,
    connection=redis.Connection,
    ssl_connection=redis.SSLConnection,
    client=redis.Redis,
)

ASYNC = Flavour(
    retry=redis.asyncio.retry.Retry,
    cluster=redis.asyncio.cluster.RedisCluster,
    cluster_node=redis.asyncio.cluster.ClusterNode,
    sentinel=redis.asyncio.sentinel.Sentinel,
    pool=redis.asyncio.ConnectionPool,
    connection=redis.asyncio.Connection,
    ssl_connection=redis.asyncio.SSLConnection,
    client=redis.asyncio.Redis,
)


def new_client(o: RedisOptions, flavour: Flavour) -> Any:
    """A redis-py client: one pool, at most ``max_connections`` connections (per node).
    A lost connection is retried once at once (a pooled socket that died with a restarted
    server), never after a sleep."""
    kwargs = _connection_kwargs(o, flavour.retry(NoBackoff(), 1, (RedisConnectionError,)))
    if o.mode == "cluster":
        return flavour.cluster(
            startup_nodes=[flavour.cluster_node(h, p) for h, p in o.hosts],
            max_connections=o.max_connections,
            ssl=o.tls,
            **kwargs,
        )
    if o.mode == "sentinel":
        sentinel = flavour.sentinel(
            list(o.hosts), sentinel_kwargs=_sentinel_kwargs(o), ssl=o.tls, **kwargs
        )
        return sentinel.master_for(o.service_name, db=o.db, max_connections=o.max_connections)
    host, port = o.hosts[0]
    pool = flavour.pool(
        connection_class=flavour.ssl_connection if o.tls else flavour.connection,
        host=host,
        port=port,
        db=o.db,
        max_connections=o.max_connections,
        **kwargs,
    )
    return flavour.client(connection_pool=pool)


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


# -- kept connections --------------------------------------------------------------------
def new_connection(client: Any) -> Any:
    """A connection with the client's settings (auth, TLS, timeouts; on Sentinel, one that
    finds the current master), outside its pool."""
    pool = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


def idle_or_new(idle: list[Any], client: Any) -> Any:
    """The most recently used idle connection (``list.pop`` is atomic, so threads may share
    the list), or a new one; the caller appends it back when done."""
    try:
        return idle.pop()
    except IndexError:
        return new_connection(client)


def packed(conn: Any, args: tuple[Any, ...]) -> list[bytes]:
    """``args`` in the wire protocol. redis-py's packer runs its encoder on each argument
    first (a Python call and type tests per argument: 14 µs for a commit's 18 arguments
    against 1.5 µs for hiredis alone, measured). The store's own commands are str, int and
    float values with a one-word command name, which hiredis packs byte for byte as
    redis-py does; anything else goes through redis-py's packer."""
    name = args[0]
    if _hiredis_pack is not None and type(name) is str and " " not in name:
        try:
            return [_hiredis_pack(args)]
        except TypeError:
            pass  # an argument of another type: redis-py's packer says which (DataError)
    return conn.pack_command(*args)  # type: ignore[no-any-return]


def roundtrip_sync(conn: Any, args: tuple[Any, ...]) -> Any:
    """One command and its reply. A connection error is retried once at once on a fresh
    socket (a kept one that died with a restarted server), as the client's
    ``Retry(NoBackoff(), 1)`` does; any other failure but a server's error reply leaves the
    connection closed, so a late reply can never be read as the next command's."""
    for attempt in (1, 2):
        try:
            if not conn.is_connected:
                conn.connect()  # (on Sentinel, this is what finds the master)
            conn.send_packed_command(packed(conn, args))
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


async def roundtrip_async(conn: Any, args: tuple[Any, ...]) -> Any:
    """``roundtrip_sync`` for an asyncio connection (a cancelled request closes it too).
    Kept beside it as a plain coroutine rather than driven steps: it is the one round
    trip of nearly every request (see ``drivers.py``)."""
    for attempt in (1, 2):
        try:
            if not conn.is_connected:
                await conn.connect()
            await conn.send_packed_command(packed(conn, args))
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
