"""The SQLite UPDATE of a delta that carries atomic operations or a size limit.

``SQLiteStore`` writes a plain delta (``json_remove`` / ``json_set``) with the statement of
``sqlite._update_sql``. A patch with ``ops`` (``coatcheck.core.atomic``) or ``max_bytes``
comes here instead: the operations become JSON expressions over the stored value in the
same ``SET data = ...`` (``json_insert(..., '$[#]', ...)`` for an append, a ``json_each``
search for ``add_to_set``, ``+`` for ``incr``), their type rules and the size of the
resulting data become conditions of its WHERE, so one statement applies the whole delta or
nothing. When it changes nothing although the record is there, the store works the patch
out in Python under the write lock (``Patch.new_data``), which names the refusal
(a type clash, ``SessionTooLarge``) or, if the row changed meanwhile, writes it.

Parameters are numbered (``?3``), so a value the statement reads twice is bound once.
No I/O: statement text and parameters.
"""

from __future__ import annotations

from typing import Any

from coatcheck.core.atomic import ADD_TO_SET, INCR, SAFE_INT, SWAP, Op
from coatcheck.core.record import PATCHABLE_FIELDS, Patch, encode_key

TABLE = "coatcheck_sessions"
"""The sessions table of the SQLite store."""

MAX_SET_OPS = 3
"""``add_to_set`` repeats the list expression it extends three times; past this many on
one key the statement would grow too large, and the store merges in Python instead."""


def _equal_kind(arg: Any) -> str:
    """How a ``json_each`` row is compared with an ``add_to_set`` argument."""
    if arg is True:
        return "true"
    if arg is False:
        return "false"
    if arg is None:
        return "null"
    return "text" if isinstance(arg, str) else "number"


def op_shape(ops: tuple[Op, ...]) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...] | None:
    """The operations grouped by key, in order of first mention: per key, its kinds (and
    how each ``add_to_set`` compares). ``incr``\\ s of a key are summed into one. None when
    the statement would be too large, and for a ``swap`` (the store wrapper's
    compare-and-set), which the statement does not express: the caller merges in Python."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for kind, key, arg, _ in ops:
        if kind == SWAP:
            return None
        steps = grouped.setdefault(key, [])
        if kind == INCR:
            if not steps:
                steps.append((INCR, ""))
            continue
        steps.append((kind, _equal_kind(arg) if kind == ADD_TO_SET else ""))
    for steps in grouped.values():
        if sum(1 for kind, _ in steps if kind == ADD_TO_SET) > MAX_SET_OPS:
            return None
    return tuple((key, tuple(steps)) for key, steps in grouped.items())


def op_params(ops: tuple[Op, ...], path: Any) -> list[Any]:
    """The parameters of the operations, in ``delta_sql``'s order: per key its JSON path,
    then per step its JSON text (the sum, for ``incr``) and, for ``add_to_set`` of a string
    or a number, the raw value the comparison binds."""
    grouped: dict[str, list[Op]] = {}
    for op in ops:
        grouped.setdefault(op[1], []).append(op)
    params: list[Any] = []
    for key, steps in grouped.items():
        params.append(path(key))
        if steps[0][0] == INCR:
            params.append(sum(step[2] for step in steps))
            continue
        for kind, _, arg, text in steps:
            params.append(text)
            if kind == ADD_TO_SET and _equal_kind(arg) in ("text", "number"):
                params.append(arg)
    return params


class _Numbered:
    """Hands out parameter numbers in the order ``op_params`` and the caller bind them."""

    def __init__(self, start: int) -> None:
        self.next = start

    def __call__(self) -> str:
        self.next += 1
        return f"?{self.next - 1}"


def delta_sql(
    table: str,
    removed: int,
    set_keys: int,
    shape: tuple[tuple[str, tuple[tuple[str, str], ...]], ...],
    fields: tuple[str, ...],
    rename: bool,
    guarded: bool,
    limited: bool,
) -> str:
    """The statement; its parameters in order: the new key (``rename``), the paths of the
    removed keys, a path and a JSON value per set key, ``op_params``, the fields' column
    values, the key, the expected handle (``guarded``), then (``limited``) the
    ``growth_bound`` and the byte limit."""
    p = _Numbered(1)
    sets: list[str] = [f"key = {p()}"] if rename else []
    expr = "data"
    if removed:
        expr = f"json_remove({expr}, {', '.join(p() for _ in range(removed))})"
    if set_keys:
        pairs = ", ".join(f"{p()}, json({p()})" for _ in range(set_keys))
        expr = f"json_set({expr}, {pairs})"
    checks: list[str] = []
    for _key, steps in shape:
        expr, check = _operated(p, expr, steps)
        checks.append(check)
    sets.append(f"data = {expr}")
    sets.extend(f"{name} = {p()}" for name in fields)
    where = [f"key = {p()}"]
    if guarded:
        where.append(f"handle = {p()}")
    where.extend(checks)
    if limited:
        # The stored size plus what the delta can add at most (``growth_bound``) is a
        # bound that settles most writes without working the new data out a second time
        # (SQLite stops at the first true term of an OR).
        bound, limit = p(), p()
        where.append(
            f"(length(CAST(data AS BLOB)) + {bound} <= {limit} "
            f"OR length(CAST({expr} AS BLOB)) <= {limit})"
        )
    return f"UPDATE {table} SET {', '.join(sets)} WHERE {' AND '.join(where)}"


def growth_bound(patch: Patch) -> int:
    """Bytes the delta can add to the data's JSON at most: each set key and each
    operation as if it were a new item (its key, its value or argument, punctuation; an
    ``incr``'s result at most 17 characters), removals as nothing."""
    total = 0
    for key, text in patch.set_json.items():
        total += len(encode_key(key).encode()) + len(text.encode()) + 2
    for _, key, _, text in patch.ops:
        total += len(encode_key(key).encode()) + len(text.encode()) + 21
    return total


def _operated(p: _Numbered, expr: str, steps: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """``expr`` with one key's operations applied, and the WHERE condition of their type
    rules (binding that key's parameters, in ``op_params``' order)."""
    path = p()
    stored = f"json_extract(data, {path})"
    kind_of = f"json_type(data, {path})"
    if steps[0][0] == INCR:
        value = f"(coalesce({stored}, 0) + {p()})"
        check = (
            f"({kind_of} IS NULL OR ({kind_of} = 'integer' AND abs({stored}) <= {SAFE_INT}))"
            f" AND abs({value}) <= {SAFE_INT}"
        )
        return f"json_set({expr}, {path}, {value})", check
    value = f"coalesce({stored}, '[]')"
    for kind, equal in steps:
        grown = f"json_insert({value}, '$[#]', json({p()}))"
        if kind != ADD_TO_SET:
            value = grown
            continue
        if equal in ("true", "false", "null"):
            match = f"type = '{equal}'"
        elif equal == "text":
            match = f"type = 'text' AND value = {p()}"
        else:
            match = f"type IN ('integer', 'real') AND value = {p()}"
        found = f"EXISTS (SELECT 1 FROM json_each({value}) WHERE {match})"
        value = f"CASE WHEN {found} THEN {value} ELSE {grown} END"
    return f"json_set({expr}, {path}, json({value}))", f"coalesce({kind_of}, 'array') = 'array'"


def wants_delta_sql(patch: Patch) -> bool:
    """Does ``patch`` need this statement rather than the plain delta's?"""
    return bool(patch.ops) or patch.max_bytes is not None


MAX_ARGS = 127
"""SQLite's default SQLITE_MAX_FUNCTION_ARG: arguments one ``json_set`` may take."""

UPDATE_SQL: dict[tuple[int, int, tuple[str, ...], bool, bool, bool], str] = {}
"""UPDATE statements by the shape of their patch (removed keys, set keys, field names,
rename, whole data): a commit reuses the text instead of formatting it again (SQLite's
statement cache is keyed by that text too)."""


def update_sql(
    removed: int,
    set_keys: int,
    fields: tuple[str, ...],
    rename: bool,
    whole_data: bool,
    guarded: bool,
) -> str:
    """``UPDATE ... WHERE key = ?`` whose parameters are, in order: the new key (``rename``),
    the data (the whole JSON text when ``whole_data``; else the JSON paths of ``removed``
    keys, then a path and a JSON value per set key), each field's column value, the key,
    and the expected handle when ``guarded``."""
    shape = (removed, set_keys, fields, rename, whole_data, guarded)
    sql = UPDATE_SQL.get(shape)
    if sql is not None:
        return sql
    for name in fields:
        if name not in PATCHABLE_FIELDS:
            raise ValueError(f"field {name!r} cannot be patched")
    sets: list[str] = ["key = ?"] if rename else []
    if whole_data:
        sets.append("data = ?")
    elif removed or set_keys:
        expr = "data"
        # SQLite caps a function's arguments (127 unless compiled otherwise): a long
        # delta is nested calls of at most that many, applied in the parameters' order.
        for first in range(0, removed, MAX_ARGS - 1):
            count = min(removed - first, MAX_ARGS - 1)
            expr = f"json_remove({expr}{', ?' * count})"
        for first in range(0, set_keys, (MAX_ARGS - 1) // 2):
            count = min(set_keys - first, (MAX_ARGS - 1) // 2)
            expr = f"json_set({expr}{', ?, json(?)' * count})"
        sets.append(f"data = {expr}")
    sets.extend(f"{name} = ?" for name in fields)
    where = "key = ? AND handle = ?" if guarded else "key = ?"
    sql = f"UPDATE {TABLE} SET {', '.join(sets) or 'key = key'} WHERE {where}"
    if len(UPDATE_SQL) < 4096:  # shapes are few; never let odd callers grow it
        UPDATE_SQL[shape] = sql
    return sql
