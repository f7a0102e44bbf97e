"""The atomic operations of a ``Session`` (``incr``, ``append``, ``add_to_set``): applied to
the session at once (read-your-write) and recorded for the store, which applies them to
what it holds when the commit lands (``coatcheck.core.atomic`` has their rules).

A slotted mixin of ``Session``, apart so each file stays readable; it uses the session's
own delta bookkeeping (``_data``, ``_set``, ``_removed``, ``_snapshots``, ``_ops``).
"""

from __future__ import annotations

from typing import Any

from coatcheck.core.atomic import ADD_TO_SET, APPEND, INCR, MISSING, Op, apply_op, check_argument
from coatcheck.core.record import encode_value
from coatcheck.errors import SessionDataError


class AtomicOperations:
    """``incr``, ``append`` and ``add_to_set``, for ``Session``."""

    __slots__ = ()

    _data: dict[str, Any]
    _set: set[str]
    _removed: set[str]
    _snapshots: dict[str, str]
    _ops: list[Op]

    def _check_open(self) -> None:
        raise NotImplementedError

    def _mark_pending(self) -> None:
        raise NotImplementedError

    def incr(self, key: str, by: int = 1) -> int:
        """Add ``by`` to the integer under ``key`` (a missing key counts as 0) and return
        the new value. The store adds ``by`` to the value it holds when the commit lands,
        so concurrent increments all count (a write of ``session[key] = n + 1`` would lose
        some). The value stays within ±(2**53 - 1). A value that is not an integer raises
        ``OperationTypeError`` (a ``SessionDataError``) naming the key, here or, when a
        concurrent request changed its type, at the commit, which then writes nothing."""
        result: int = self._operate(INCR, key, by)
        return result

    def append(self, key: str, value: Any) -> None:
        """Add ``value`` at the end of the list under ``key`` (a missing key starts as
        ``[]``), in the store, so concurrent appends all land (a cart's additions). The
        session's value shows it at once (as a new list: one read before stays as it
        was). A value under ``key`` that is not a list raises ``OperationTypeError``
        naming the key."""
        self._operate(APPEND, key, value)

    def add_to_set(self, key: str, value: Any) -> None:
        """``append``, unless the list already holds an element JSON-equal to ``value``
        (checked in the store, against what it holds when the commit lands). ``value`` is
        a string, an integer within ±(2**53 - 1), a bool or None; see
        ``coatcheck.core.atomic`` for what equal means."""
        self._operate(ADD_TO_SET, key, value)

    def _operate(self, kind: str, key: str, arg: Any) -> Any:
        """Apply one operation here (read-your-write) and record it for the store.

        The store applies an operation to the value it holds, so the operation is sent
        only for a key this request has not written: after ``session[key] = v``, a
        ``del``, or a change in place of the list it read, the result is known here and
        is written whole, as that write would have been (the last write wins, in order)."""
        self._check_open()
        if not isinstance(key, str):
            raise SessionDataError(f"session keys must be str, got {type(key).__name__}")
        check_argument(kind, key, arg)
        arg_json = encode_value(key, arg)
        data = self._data
        current = data.get(key, MISSING)
        snapshot = self._snapshots.get(key)
        written = (
            key in self._set
            or key in self._removed
            or (snapshot is not None and encode_value(key, current) != snapshot)
        )
        if type(current) is list:
            current = list(current)  # the loaded record's list is never changed in place
        result = apply_op(kind, key, current, arg)
        data[key] = result
        self._mark_pending()
        if written:
            self._set.add(key)
            self._removed.discard(key)
            self._snapshots.pop(key, None)
        else:
            self._ops.append((kind, key, arg, arg_json))
            if snapshot is not None:
                self._snapshots[key] = encode_value(key, result)
        return result

    def _drop_ops(self, key: str) -> None:
        """A write or removal of ``key`` replaces the operations made on it before."""
        self._ops[:] = [op for op in self._ops if op[1] != key]
