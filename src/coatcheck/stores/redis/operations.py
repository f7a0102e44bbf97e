"""What the store's procedures yield: Redis operations as data.

Each store operation (``RedisStore._get``, ``_rename``, ``_purge``, ...) is written once as
a generator of these (``coatcheck.core.steps.Steps``), and the sync or the async driver
(``drivers.py``) executes each one and sends its result back. An operation says *what* to
send, never *how*: whether a command goes on a kept connection or through the client, how
a script the server has not cached is resent, how a cluster's SCAN walks its nodes, is the
drivers' and ``exchange.py``'s business, so the procedures are the same for every topology.

No I/O here.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from coatcheck.stores.redis.scripts import Script

T = TypeVar("T")


class WrongType:
    """The reply to a ``lenient`` read of a key that holds another type than the command
    reads (a string where a record's hash should be): a key damaged outside the store,
    which the procedure treats as no record instead of an error."""

    def __repr__(self) -> str:
        return "WRONG_TYPE"


WRONG_TYPE = WrongType()


@dataclass(frozen=True, slots=True)
class Cmd:
    """One command; the result is its reply (``WRONG_TYPE`` for a ``lenient`` read of a
    key of another type, which otherwise is an error)."""

    args: tuple[Any, ...]
    lenient: bool = False


@dataclass(frozen=True, slots=True)
class Eval:
    """One script run; the result is its reply."""

    script: Script
    keys: tuple[str, ...]
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Batch:
    """Several commands in one round trip; the result is the list of their replies (the
    first error among them is raised). ``atomic`` makes it MULTI/EXEC on a single node (a
    cluster pipeline is never a transaction: each command is atomic on its own key)."""

    steps: tuple[Cmd | Eval, ...]
    atomic: bool = False
    lenient: bool = False
    """Replies of reads of keys of another type are ``WRONG_TYPE`` instead of an error."""


@dataclass(frozen=True, slots=True)
class ScanPage:
    """One SCAN page; ``cursor`` is None to start. Result: (next cursor or None, keys)."""

    match: str
    count: int
    cursor: Any = None


@dataclass(frozen=True, slots=True)
class Pause:
    """Sleep this long (a background job leaving the server and the CPU to requests)."""

    seconds: float


Wire = Cmd | Eval | Batch | ScanPage
"""The operations that talk to Redis."""

Op = Wire | Pause


def command_args(step: Cmd | Eval, *, cached: bool) -> tuple[Any, ...]:
    """A step as one command. A script goes by EVALSHA when ``cached`` (the server should
    have it), else as EVAL with its text: the fallback after NOSCRIPT, and the form inside
    a MULTI, where a NOSCRIPT error half-way could not be retried without repeating the
    commands that already ran."""
    if isinstance(step, Cmd):
        return step.args
    script, keys = step.script, step.keys
    if cached:
        return ("EVALSHA", script.sha, len(keys), *keys, *step.args)
    return ("EVAL", script.text, len(keys), *keys, *step.args)


Procedure = Generator[Op, Any, T]
"""A store operation written once: yields operations, is sent their results, returns a
``T`` (run by ``drive_sync`` / ``drive_async`` with a driver's ``run``)."""
