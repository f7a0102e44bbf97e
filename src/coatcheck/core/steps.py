"""Procedures written once as steps, and the only two drivers that run them.

A procedure that needs I/O is a generator: it yields an operation (a store call, a SQL
statement, a Redis command, a manager call), receives its result, and returns a value.
``drive_sync`` runs it with a sync executor, ``drive_async`` with an async one; the
sequence of steps and every decision between them exist once, so the sync path (WSGI,
Flask, Django) and the async path (ASGI) cannot drift apart. What an operation *is* and how
it is executed belong to the caller: the manager's store operations
(``coatcheck.engine.operations``), a backend's wire calls (PostgreSQL, Redis), Django's
manager calls. This module knows none of them.

Standard library only; no I/O happens here, only in the executors passed in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")

Steps = Generator[Any, Any, T]
"""A procedure: yields operations, is sent their results, returns a ``T``."""


def drive_sync(steps: Steps[T], execute: Callable[[Any], Any]) -> T:
    """Run ``steps`` to the end, executing each yielded operation with ``execute``."""
    result: Any = None
    try:
        while True:
            result = execute(steps.send(result))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def drive_async(steps: Steps[T], execute: Callable[[Any], Awaitable[Any]]) -> T:
    """Run ``steps`` to the end, awaiting ``execute`` of each yielded operation."""
    result: Any = None
    try:
        while True:
            result = await execute(steps.send(result))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
