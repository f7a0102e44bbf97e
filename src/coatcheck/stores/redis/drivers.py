"""The two executors of Redis operations: ``SyncDriver.run`` and ``AsyncDriver.run``.

The store drives its procedures with ``coatcheck.core.steps`` (``drive_sync(steps,
driver.run)``); each driver executes one operation (``operations.py``) and returns its
result. What the drivers keep apart is only what differs between the paths: the pool of
slots that bounds operations in flight, the client (one per process on the sync path, one
per event loop on the async one), fork safety, and the mapping of every failure to
``StoreUnavailable``. How a batch of scripts or a SCAN page becomes client calls is written
once, in ``exchange.py``, and driven by the same two core drivers.

The one exception is the hot path: what is always one round trip is a plain call, not a
generator of steps, since driving one measured about 0.7 µs per operation, which nearly
every request would pay (the manager is cut the same way; see ``engine/manager.py``).
That is a single command or script (the load, a commit's script), which on a single node
goes on a kept connection (``clients.roundtrip_sync`` / ``roundtrip_async``) and on a
cluster through the client, a script the node had not cached (NOSCRIPT) being sent again
by EVAL; and a batch that cannot need a second round trip (a new session's MULTI, a
batch with no script: ``exchange.one_round_trip``).
"""

from __future__ import annotations

import asyncio
import operator
import queue
import threading
import time
import weakref
from typing import Any

from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFoundError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError
from redis.sentinel import MasterNotFoundError

from coatcheck.core.steps import drive_async, drive_sync
from coatcheck.errors import CoatcheckError, StoreUnavailable
from coatcheck.stores.base import process_id
from coatcheck.stores.redis.clients import (
    ASYNC,
    SYNC,
    idle_or_new,
    new_client,
    roundtrip_async,
    roundtrip_sync,
)
from coatcheck.stores.redis.codec import refusal
from coatcheck.stores.redis.exchange import (
    exchange,
    one_round_trip,
    pipeline,
    settled,
    wrong_type,
)
from coatcheck.stores.redis.operations import (
    WRONG_TYPE,
    Batch,
    Cmd,
    Eval,
    Op,
    Pause,
    command_args,
)
from coatcheck.stores.redis.options import RedisOptions

FAILURES = (RedisError, RedisClusterException, OSError)
"""What a Redis client raises when the server is unreachable, slow or refusing (OSError
covers socket errors and TimeoutError)."""

NO_SLOT = "Redis store: no free connection within the timeout"


def unavailable(exc: BaseException) -> CoatcheckError:
    """The error a client's exception stands for: a patch the store refused (a type
    clash of an atomic operation, over ``max_bytes``: the app's, with its own status), or
    else the store unavailable."""
    if isinstance(exc, ResponseError):
        refused = refusal(str(exc))
        if refused is not None:
            return refused
    text = str(exc)
    if isinstance(exc, MasterNotFoundError | AsyncMasterNotFoundError) and " : <" in text:
        # redis-py quotes the repr of each sentinel's client (a screenful): keep the
        # sentence and the last sentinel's own error.
        head, _, rest = text.partition(" : <")
        text = head + (f": {rest.rpartition(' - ')[2]}" if " - " in rest else "")
    return StoreUnavailable(f"Redis store: {type(exc).__name__}: {text}")


class SyncDriver:
    """Runs operations with a sync redis-py client; at most ``max_connections`` at once."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self.cluster = options.mode == "cluster"
        self._client: Any = None
        self._lock = threading.Lock()
        # One token per operation allowed in flight; SimpleQueue is C, so taking and
        # returning one costs a fraction of a threading.Semaphore (whose Condition is
        # Python). Idle kept connections wait in a list, last in first out, so that
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
                    self._client = new_client(self.options, SYNC)
        return self._client

    def run(self, op: Op) -> Any:
        if isinstance(op, Pause):  # holds no connection
            time.sleep(op.seconds)
            return None
        if self._pid != process_id():
            self._after_fork()
        slots = self._slots
        try:
            slots.get(timeout=self.options.timeout)
        except queue.Empty:
            raise StoreUnavailable(NO_SLOT) from None
        try:
            client = self.client()
            if isinstance(op, Cmd | Eval):  # the hot path: a plain call
                if self.cluster:
                    send = client.execute_command
                    try:
                        return send(*command_args(op, cached=True))
                    except NoScriptError:
                        return send(*command_args(op, cached=False))
                idle = self._idle
                conn = idle_or_new(idle, client)
                try:
                    try:
                        return roundtrip_sync(conn, command_args(op, cached=True))
                    except NoScriptError:
                        return roundtrip_sync(conn, command_args(op, cached=False))
                finally:
                    idle.append(conn)
            if isinstance(op, Batch) and one_round_trip(op):  # a plain call too
                if op.lenient:
                    results = pipeline(client, op, self.cluster).execute(raise_on_error=False)
                    return settled(results, lenient=True)
                return pipeline(client, op, self.cluster).execute()
            return drive_sync(exchange(client, op, self.cluster), operator.call)
        except StoreUnavailable:
            raise
        except ResponseError as exc:
            if type(op) is Cmd and op.lenient and wrong_type(exc):
                return WRONG_TYPE
            raise unavailable(exc) from exc
        except FAILURES as exc:
            raise unavailable(exc) from exc
        finally:
            slots.put(None)

    def close(self) -> None:
        client, self._client = self._client, None
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()
        if client is not None:
            client.close()


_LoopState = tuple[Any, asyncio.Semaphore, list[Any]]
"""An event loop's client, its slots, and its idle kept connections."""


class AsyncDriver:
    """The same with a redis.asyncio client. A client's connections belong to the event
    loop that opened them, so each loop that uses the store gets its own client (an app
    served by uvicorn and a test or a CLI calling the same store from another loop)."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self.cluster = options.mode == "cluster"
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        # The last loop's state, checked first (an app runs on one loop): a weak reference
        # to the loop and the state, swapped as one tuple so threads never see a mix.
        self._last: tuple[Any, _LoopState, int] | None = None

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        last = self._last
        pid = process_id()
        if last is not None and last[0]() is loop and last[2] == pid:
            return last[1]
        state = self._per_loop.get(loop)
        if state is None or (last is not None and last[2] != pid):
            # (A loop inherited through fork() keeps its state object: its sockets are the
            # parent's, never to be used here; see SyncDriver._after_fork.)
            state = (
                new_client(self.options, ASYNC),
                asyncio.Semaphore(self.options.max_connections),
                [],
            )
            with self._lock:
                self._per_loop[loop] = state
        self._last = (weakref.ref(loop), state, pid)
        return state

    async def run(self, op: Op) -> Any:
        if isinstance(op, Pause):  # holds no connection
            await asyncio.sleep(op.seconds)
            return None
        try:
            client, slots, idle = self._state()
        except FAILURES as exc:
            raise unavailable(exc) from exc
        if slots.locked():  # only a full pool pays for a timed wait
            try:
                await asyncio.wait_for(slots.acquire(), self.options.timeout)
            except TimeoutError:
                raise StoreUnavailable(NO_SLOT) from None
        else:
            await slots.acquire()
        try:
            if isinstance(op, Cmd | Eval):  # the hot path: a plain call
                if self.cluster:
                    send = client.execute_command
                    try:
                        return await send(*command_args(op, cached=True))
                    except NoScriptError:
                        return await send(*command_args(op, cached=False))
                conn = idle_or_new(idle, client)
                try:
                    try:
                        return await roundtrip_async(conn, command_args(op, cached=True))
                    except NoScriptError:
                        return await roundtrip_async(conn, command_args(op, cached=False))
                finally:
                    idle.append(conn)
            if isinstance(op, Batch) and one_round_trip(op):  # a plain call too
                if op.lenient:
                    pipe = pipeline(client, op, self.cluster)
                    return settled(await pipe.execute(raise_on_error=False), lenient=True)
                return await pipeline(client, op, self.cluster).execute()
            return await drive_async(exchange(client, op, self.cluster), operator.call)
        except ResponseError as exc:
            if type(op) is Cmd and op.lenient and wrong_type(exc):
                return WRONG_TYPE
            raise unavailable(exc) from exc
        except FAILURES as exc:
            raise unavailable(exc) from exc
        finally:
            slots.release()

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
