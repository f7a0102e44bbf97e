"""How one operation is exchanged through a redis-py client, written once for both drivers.

``exchange(client, op, cluster)`` is a generator of the client's I/O calls: it yields each
one as a call with no arguments left (``client.execute_command`` with its command, a
pipeline's ``execute``, a ``scan``), is sent the call's result, and returns the
operation's. The sync driver runs it with ``drive_sync(..., call_sync)``, which calls each
one; the async driver with ``drive_async(..., call_async)``, which awaits each one, on a
``redis.asyncio`` client whose methods have the same names and arguments. Everything
between the calls (building pipelines, resending the scripts a node had not cached,
walking a cluster's nodes for SCAN) exists once.

A server's NOSCRIPT reply is an answer here, not a failure: ``call_sync`` and
``call_async`` return it as a value, and the exchange resends the script by EVAL. Every
other error propagates to the driver, which makes it ``StoreUnavailable``.

The request's own commands on a single node (the load, a commit's script) do not come
here: the drivers send them on a kept connection, as a plain call (see ``drivers.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from coatcheck.core.steps import Steps
from coatcheck.stores.redis.operations import Batch, Cmd, Eval, ScanPage, Wire, command_args

Call = Callable[[], Any]
"""One I/O call of the client, its arguments bound (``functools.partial``)."""


def exchange(client: Any, op: Wire, cluster: bool) -> Steps[Any]:
    """The client calls that carry out ``op`` (a cluster client when ``cluster``)."""
    if isinstance(op, Cmd | Eval):
        return (yield from _command(client, op))
    if isinstance(op, Batch):
        return (yield from _batch(client, op, cluster))
    return (yield from _scan(client, op, cluster))


def call_sync(call: Call) -> Any:
    """Run one call of a sync client; a NOSCRIPT reply is returned, not raised."""
    try:
        return call()
    except NoScriptError as miss:
        return miss


async def call_async(call: Callable[[], Awaitable[Any]]) -> Any:
    """Await one call of an asyncio client; a NOSCRIPT reply is returned, not raised."""
    try:
        return await call()
    except NoScriptError as miss:
        return miss


def _command(client: Any, op: Cmd | Eval) -> Steps[Any]:
    result = yield functools.partial(client.execute_command, *command_args(op, cached=True))
    if isinstance(result, NoScriptError):  # only ever the reply to an EVALSHA
        result = yield functools.partial(client.execute_command, *command_args(op, cached=False))
    if isinstance(result, NoScriptError):
        raise result
    return result


def _batch(client: Any, op: Batch, cluster: bool) -> Steps[list[Any]]:
    """Scripts go by EVALSHA in a batch that is not a transaction (a page of a purge runs
    one script per record, and EVAL would send the script's whole text each time); the
    steps the server answered NOSCRIPT did not run, and go again by EVAL in one more
    pipeline. Inside a MULTI they go as EVAL (see ``command_args``)."""
    pipe = client.pipeline(transaction=op.atomic and not cluster)
    for step in op.steps:
        pipe.execute_command(*command_args(step, cached=not op.atomic))
    if op.atomic:
        results: list[Any] = yield pipe.execute
        return results
    results = yield functools.partial(pipe.execute, raise_on_error=False)
    missing = _unknown_scripts(results)
    if missing:
        pipe = client.pipeline(transaction=False)
        for i in missing:
            pipe.execute_command(*command_args(op.steps[i], cached=False))
        again = yield functools.partial(pipe.execute, raise_on_error=False)
        for i, result in zip(missing, again, strict=True):
            results[i] = result
    return _raise_errors(results)


def _scan(client: Any, op: ScanPage, cluster: bool) -> Steps[tuple[Any, list[str]]]:
    """One SCAN page. On a cluster the cursor is the list of (primary, its cursor) still
    to walk, one node after the other."""
    if not cluster:
        cursor, keys = yield functools.partial(
            client.scan, cursor=op.cursor or 0, match=op.match, count=op.count
        )
        return (cursor or None), list(keys)
    pending = op.cursor or [(node, 0) for node in client.get_primaries()]
    node, cursor = pending[0]
    cursors, keys = yield functools.partial(
        client.scan, cursor=cursor, match=op.match, count=op.count, target_nodes=node
    )
    return _next_pending(pending, cursors[node.name]), list(keys)


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
