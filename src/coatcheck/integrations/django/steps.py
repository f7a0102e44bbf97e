"""Procedures written once, driven twice: the Django adapter's sync and async methods.

Django 5 gives every session method an async twin (``load``/``aload``, ``save``/``asave``,
...), and its own backends keep two copies of each body that drift apart. Here each
procedure is a generator that yields ``Call`` steps, each holding the sync form and the
async form of one I/O call (a manager method and its ``*_sync`` twin, a store method, an
old Django engine's ``load``/``aload``). ``run_sync`` calls the sync forms, ``run_async``
awaits the async ones; everything between the calls exists exactly once. It is the same
idea as ``coatcheck.engine.operations``, one level up (over the manager's public API
instead of the store's), driven by the same two drivers of ``coatcheck.core.steps``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from coatcheck.core.steps import drive_async, drive_sync

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """One I/O step in its two forms, both ready to call without arguments."""

    sync: Callable[[], Any]
    async_: Callable[[], Awaitable[Any]]


def call(sync: Callable[..., Any], async_: Callable[..., Awaitable[Any]], *args: Any) -> Call:
    """``call(manager.load_sync, manager.load, token)``: the same call, both ways."""
    return Call(partial(sync, *args), partial(async_, *args))


Steps = Generator[Call, Any, T]


def run_sync(steps: Steps[T]) -> T:
    """Drive ``steps`` with the sync form of each call (WSGI, management commands)."""
    return drive_sync(steps, _sync)


async def run_async(steps: Steps[T]) -> T:
    """Drive ``steps`` with the async form of each call (Django's ``a*`` methods)."""
    return await drive_async(steps, _async)


def _sync(step: Call) -> Any:
    return step.sync()


def _async(step: Call) -> Awaitable[Any]:
    return step.async_()
