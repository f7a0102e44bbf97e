"""Atomic operations on one session value: ``incr``, ``append``, ``add_to_set``.

Two requests of one session that both write ``session["cart"] = cart + [item]`` send two
whole values, and the later one wins: a lost item. An operation instead says what to do
to the value the store holds at the moment it applies the delta, so fifty concurrent
additions keep fifty items. This module is the reference semantics every store follows
(the memory, Memcached and cookie stores run it; SQLite, PostgreSQL and Redis write the
same rules in SQL and Lua), and the JSON size a store measures for ``Patch.max_bytes``.

The rules, the same on every store:

- ``incr(key, by)``: the value is an integer (a missing key counts as 0); ``by`` too. Both,
  and the result, stay within ±(2**53 - 1), the integers every store (and JavaScript) holds
  exactly; anything else is a type clash.
- ``append(key, value)``: the value is a list (a missing key is ``[]``); ``value`` is added
  at its end.
- ``add_to_set(key, value)``: as ``append``, unless the list already holds an element
  JSON-equal to ``value``. ``value`` is a string, a safe integer, a bool or None (``True``
  is not ``1``; a number equals the same number stored as a float, ``1 == 1.0``); lists and
  objects are refused, as no store compares them alike.

One more kind is not for applications but for a store wrapper (``stores.encrypted``),
which cannot let the backend compute on sealed values and so works operations out itself:

- ``swap(key, (expected, value))``: the value becomes ``value`` only if the stored JSON
  text of the key is ``expected`` (None: only if the key is missing); otherwise the store
  refuses the whole patch with ``SwapRefused`` and the wrapper reads again and retries (a
  compare-and-set: a concurrent write in between is never overwritten). Its Op's text is
  ``expected + "\\x00" + the value's JSON text`` (``expected`` empty for a missing key; no
  JSON text holds a raw NUL), what the Redis script compares and writes without decoding.

A type clash (an ``incr`` of a string, an ``append`` to an object) raises
``OperationTypeError``, a ``SessionDataError`` naming the key; a store that finds one
refuses the whole delta, so nothing is half-applied and nothing is lost.

Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any, Final

from coatcheck.errors import SessionDataError

INCR: Final = "incr"
APPEND: Final = "append"
ADD_TO_SET: Final = "add_to_set"
SWAP: Final = "swap"
KINDS: Final = frozenset({INCR, APPEND, ADD_TO_SET})
"""The kinds an application may ask for (``SWAP`` is the store wrapper's own)."""

SAFE_INT: Final = 2**53 - 1
"""The largest integer ``incr`` works with: every store (Lua's doubles, JSON in a browser)
holds it exactly."""

Op = tuple[str, str, Any, str]
"""One operation as a Patch carries it: (kind, key, argument, the argument's JSON text)."""


class OperationTypeError(SessionDataError):
    """An atomic operation met a value of the wrong type (``incr`` of a string, ``append``
    to an object) or was given an argument it cannot take; the message names the key."""

    def __init__(self, kind: str, key: str, problem: str) -> None:
        super().__init__(f"session.{kind}({key!r}, ...) cannot apply: {problem}")
        self.kind = kind
        self.key = key


class SwapRefused(SessionDataError):
    """A ``swap`` found another value than it expected: a concurrent write landed between
    the wrapper's read and its write. Nothing of the patch was applied; the wrapper reads
    again and retries."""

    def __init__(self, key: str) -> None:
        super().__init__(f"session[{key!r}] changed since it was read")
        self.key = key


def swap_op(key: str, expected: str | None, value: Any, value_text: str) -> Op:
    """The ``swap`` of ``key`` from the JSON text ``expected`` (None: missing) to ``value``
    (whose JSON text is ``value_text``)."""
    return (
        SWAP,
        key,
        (expected, value),
        ("" if expected is None else expected) + "\x00" + value_text,
    )


def _is_safe_int(value: object) -> bool:
    return type(value) is int and -SAFE_INT <= value <= SAFE_INT


def check_argument(kind: str, key: str, arg: object) -> None:
    """Refuse an argument no store could apply alike (before anything is recorded)."""
    if kind == INCR:
        if not _is_safe_int(arg):
            raise OperationTypeError(kind, key, f"by={arg!r} is not an integer within ±2**53-1")
    elif kind == ADD_TO_SET:
        if not (arg is None or type(arg) in (str, bool) or _is_safe_int(arg)):
            raise OperationTypeError(
                kind,
                key,
                f"{type(arg).__name__} values cannot be compared alike on every "
                "store: add strings, integers within ±2**53-1, booleans or None",
            )
    elif kind != APPEND:
        raise ValueError(f"unknown operation {kind!r}")


def json_equal(a: object, b: object) -> bool:
    """JSON equality of a set element and an ``add_to_set`` argument: same JSON type and
    value (a bool is never a number; ``1`` equals ``1.0``)."""
    if type(a) is bool or type(b) is bool or a is None or b is None:
        return a is b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if type(a) in (int, float) and type(b) in (int, float):
        return a == b
    return False


_MISSING: Any = object()


def apply_op(kind: str, key: str, current: Any, arg: Any) -> Any:
    """The value after one operation on ``current`` (``MISSING`` for a missing key). A
    list is extended in place: callers pass a copy of one they must keep."""
    if kind == SWAP:
        expected, value = arg
        if expected is None:
            if current is not _MISSING:
                raise SwapRefused(key)
        elif current is _MISSING or _SIZE_ENCODER.encode(current) != expected:
            raise SwapRefused(key)
        return value
    if kind == INCR:
        if current is _MISSING:
            current = 0
        if not _is_safe_int(current):
            raise OperationTypeError(
                kind, key, f"the value is {_kind_of(current)}, not an integer within ±2**53-1"
            )
        result = current + arg
        if not _is_safe_int(result):
            raise OperationTypeError(kind, key, f"the result {result} is beyond ±2**53-1")
        return result
    if current is _MISSING:
        current = []
    if type(current) is not list:
        raise OperationTypeError(kind, key, f"the value is {_kind_of(current)}, not a list")
    if kind == ADD_TO_SET and any(json_equal(item, arg) for item in current):
        return current
    current.append(arg)
    return current


MISSING: Final = _MISSING
"""What ``apply_op`` is given for a key the data does not hold."""


def _kind_of(value: object) -> str:
    if isinstance(value, bool):
        return "a bool"
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", float: "a float"}.get(
        type(value), "an integer"
    )


def apply_ops(data: dict[str, Any], ops: tuple[Op, ...]) -> None:
    """Apply ``ops`` in order to decoded ``data``, in place. Raises before changing
    anything when one clashes (all are checked on copies first)."""
    results: dict[str, Any] = {}
    for kind, key, arg, _ in ops:
        current = results.get(key, _MISSING)
        if current is _MISSING:
            current = data.get(key, _MISSING)
            if type(current) is list:
                current = list(current)
        results[key] = apply_op(kind, key, current, arg)
    data.update(results)


_SIZE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def data_bytes(data: dict[str, Any]) -> int:
    """The size a store measures for ``Patch.max_bytes``: UTF-8 bytes of the data's
    compact JSON text."""
    return len(_SIZE_ENCODER.encode(data).encode())


def encoded_bytes(encoded: dict[str, str]) -> int:
    """``data_bytes`` of data held as key -> compact JSON text of the value."""
    if not encoded:
        return 2
    size = 2 * len(encoded) + 1  # braces, a colon per item, commas between them
    for key, text in encoded.items():
        size += len(json.encoder.encode_basestring(key).encode()) + len(text.encode())
    return size
