"""How a multi-step operation goes through a redis-py client, written once for both drivers.

``exchange(client, op, cluster)`` is a generator of the client's I/O calls for a ``Batch``
of scripts (those a node had not cached are sent again) or a ``ScanPage`` (which walks a
cluster's nodes): it yields each call with its arguments bound (a pipeline's ``execute``, a
``scan``), is sent the call's result, and returns the operation's. The sync driver runs
it with ``drive_sync(..., operator.call)``, which makes each call; the async driver with
``drive_async(..., operator.call)``, which awaits what each call returns, on a
``redis.asyncio`` client whose methods have the same names and arguments.
Everything between the calls (building pipelines, resending the scripts a node had not
cached, walking a cluster's primaries for SCAN) exists once.

What is always one round trip does not come here: a single command or script (a
request's load, a commit's script) and a batch that cannot need a second round trip (a
new session's MULTI, the reads of a user's sessions: ``one_round_trip``). Driving a
generator for it would cost about 0.7 µs per operation, so the drivers send it as a plain
call (``drivers.py``; ``pipeline`` builds a batch for both).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from coatcheck.core.steps import Steps
from coatcheck.stores.redis.operations import WRONG_TYPE, Batch, Eval, ScanPage, command_args


def exchange(client: Any, op: Batch | ScanPage, cluster: bool) -> Steps[Any]:
    """The client calls that carry out ``op`` (a cluster client when ``cluster``)."""
    if isinstance(op, Batch):
        return _batch(client, op, cluster)
    return _scan(client, op, cluster)


def one_round_trip(op: Batch) -> bool:
    """Whether ``op`` is always one round trip: a MULTI (whose scripts go as EVAL) or a
    batch with no script in it leaves nothing to send again. The drivers send such a batch
    with a plain ``pipeline(...).execute()``, which raises the first error, if any."""
    return op.atomic or not any(type(step) is Eval for step in op.steps)


def pipeline(client: Any, op: Batch, cluster: bool) -> Any:
    """``op``'s commands queued on a new pipeline, not yet sent (no I/O)."""
    pipe = client.pipeline(transaction=op.atomic and not cluster)
    for step in op.steps:
        pipe.execute_command(*command_args(step, cached=not op.atomic))
    return pipe


def _batch(client: Any, op: Batch, cluster: bool) -> Steps[list[Any]]:
    """Scripts go by EVALSHA in a batch that is not a transaction (a page of a purge runs
    one script per record, and EVAL would send the script's whole text each time); the
    steps the server answered NOSCRIPT did not run, and go again by EVAL in one more
    pipeline. Inside a MULTI they go as EVAL (see ``command_args``)."""
    pipe = pipeline(client, op, cluster)
    results: list[Any] = yield functools.partial(pipe.execute, raise_on_error=False)
    missing = _unknown_scripts(results)
    if missing:
        pipe = client.pipeline(transaction=False)
        for i in missing:
            pipe.execute_command(*command_args(op.steps[i], cached=False))
        again = yield functools.partial(pipe.execute, raise_on_error=False)
        for i, result in zip(missing, again, strict=True):
            results[i] = result
    return settled(results, op.lenient)


def _scan(client: Any, op: ScanPage, cluster: bool) -> Steps[tuple[Any, list[str]]]:
    """One SCAN page. On a cluster the cursor is the list of (primary, its cursor) still
    to walk, one node after the other."""
    if not cluster:
        cursor, keys = yield functools.partial(
            client.scan, cursor=op.cursor or 0, match=op.match, count=op.count
        )
        return (cursor or None), list(keys)
    pending = op.cursor or [(node, 0) for node in client.get_primaries()]
    # A cursor resumed from its text names its nodes ("host:port", RecordScan).
    pending = [(client.get_node(node_name=n) if isinstance(n, str) else n, c) for n, c in pending]
    node, cursor = pending[0]
    cursors, keys = yield functools.partial(
        client.scan, cursor=cursor, match=op.match, count=op.count, target_nodes=node
    )
    return _next_pending(pending, cursors[node.name]), list(keys)


def _unknown_scripts(results: Sequence[Any]) -> list[int]:
    """Positions of the pipelined scripts the server did not have cached."""
    return [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]


def wrong_type(error: BaseException) -> bool:
    """Is ``error`` Redis' answer to a command on a key of another type?"""
    return isinstance(error, ResponseError) and str(error).startswith("WRONGTYPE")


def settled(results: list[Any], lenient: bool = False) -> list[Any]:
    """Results of a pipeline run with ``raise_on_error=False``, raising the first error
    (as a pipeline run with the default would have); when ``lenient``, a read of a key of
    another type is ``WRONG_TYPE`` instead."""
    for i, result in enumerate(results):
        if isinstance(result, Exception):
            if lenient and wrong_type(result):
                results[i] = WRONG_TYPE
                continue
            raise result
    return results


def _next_pending(pending: list[tuple[Any, int]], cursor: int) -> list[tuple[Any, int]] | None:
    node = pending[0][0]
    rest = pending[1:] if int(cursor) == 0 else [(node, int(cursor)), *pending[1:]]
    return rest or None
