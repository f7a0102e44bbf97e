"""The PostgreSQL UPDATE of a delta that carries atomic operations or a size limit.

A plain delta is ``data = (data - removed) || set`` (``Statements.update``). A patch with
``ops`` (``coatcheck.core.atomic``) or ``max_bytes`` is one UPDATE built here: each
operation a ``jsonb`` expression over the stored value (``||`` an array of one element
for ``append``; a search of ``jsonb_array_elements`` first for ``add_to_set``, whose
``=`` is jsonb equality; ``numeric`` ``+`` for ``incr``), and their type rules and the size
of the resulting data (``octet_length`` of its jsonb text, which has a space after each
colon and comma) conditions of its WHERE, so the statement applies all of the delta or
nothing. Every cast is behind a CASE that tests the type first: WHERE clauses run in no
fixed order, and a failing cast would be an error where a refusal is meant.

When it changes nothing although the record is there, the store works the patch out in
Python (``Patch.new_data``), which names the refusal, or writes the result with a
compare-and-set on the data it read (``whole_sql``).

Parameters are named (``%(p3)s``), so a value the statement reads twice is bound once.
No I/O: statement text and parameters.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import sql

from coatcheck.core.atomic import ADD_TO_SET, INCR, SAFE_INT, SWAP, Op
from coatcheck.core.record import Patch

Shape = tuple[tuple[str, ...], ...]
"""Per key the operations touch, in order of first mention: its kinds (``incr``\\ s of
one key are summed into one)."""


def op_shape(ops: tuple[Op, ...]) -> Shape | None:
    """None for a ``swap`` (the store wrapper's compare-and-set), which one statement does
    not express: the caller works it out in Python under its own compare-and-set."""
    grouped: dict[str, list[str]] = {}
    for kind, key, _, _ in ops:
        if kind == SWAP:
            return None
        steps = grouped.setdefault(key, [])
        if kind != INCR or not steps:
            steps.append(kind)
    return tuple(tuple(steps) for steps in grouped.values())


class _Params:
    """Named parameters, numbered in the order the statement binds them."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self) -> str:
        self.names.append(f"p{len(self.names)}")
        return f"%({self.names[-1]})s"


def delta_sql(
    table: sql.Composable,
    shape: Shape,
    fields: tuple[str, ...],
    rename: bool,
    guarded: bool,
    limited: bool,
) -> bytes:
    """The statement. Its parameters, in order (``delta_params``): the new key
    (``rename``), the removed keys (a text array), the set keys (a jsonb object), per
    operated key its name and per step its argument (the sum, for ``incr``), the fields'
    values, the key, the expected handle (``guarded``), the byte limit (``limited``)."""
    p = _Params()
    sets: list[str] = [f"key = {p()}"] if rename else []
    expr = f"((data - {p()}::text[]) || {p()}::jsonb)"
    checks: list[str] = []
    for steps in shape:
        name = f"{p()}::text"
        stored = f"(data -> {name})"
        if steps[0] == INCR:
            by = p()
            whole = f"(jsonb_typeof({stored}) = 'number' AND (data ->> {name}) ~ '^-?[0-9]+$')"
            current = f"(CASE WHEN {whole} THEN (data ->> {name})::numeric END)"
            value = f"(coalesce({current}, 0) + {by}::bigint)"
            checks.append(
                f"({stored} IS NULL OR abs({current}) <= {SAFE_INT}) AND abs({value}) <= {SAFE_INT}"
            )
            expr = f"jsonb_set({expr}, ARRAY[{name}], to_jsonb({value}))"
            continue
        value = (
            f"(CASE WHEN {stored} IS NULL THEN '[]'::jsonb "
            f"WHEN jsonb_typeof({stored}) = 'array' THEN {stored} END)"
        )
        checks.append(f"({stored} IS NULL OR jsonb_typeof({stored}) = 'array')")
        for kind in steps:
            arg = f"{p()}::jsonb"
            grown = f"({value} || jsonb_build_array({arg}))"
            if kind == ADD_TO_SET:
                found = f"EXISTS (SELECT 1 FROM jsonb_array_elements({value}) AS e WHERE e = {arg})"
                grown = f"(CASE WHEN {found} THEN {value} ELSE {grown} END)"
            value = grown
        expr = f"jsonb_set({expr}, ARRAY[{name}], {value})"
    sets.append(f"data = {expr}")
    sets.extend(f'"{field}" = {p()}' + ("::jsonb" if field == "meta" else "") for field in fields)
    where = [f"key = {p()}"]
    if guarded:
        where.append(f"handle = {p()}")
    where.extend(checks)
    if limited:
        where.append(f"octet_length(({expr})::text) <= {p()}")
    text = f"UPDATE {{}} SET {', '.join(sets)} WHERE {' AND '.join(where)}"
    return sql.SQL(text).format(table).as_bytes(None)


def op_values(ops: tuple[Op, ...]) -> list[Any]:
    """The operations' parameters in ``delta_sql``'s order."""
    grouped: dict[str, list[Op]] = {}
    for op in ops:
        grouped.setdefault(op[1], []).append(op)
    values: list[Any] = []
    for key, steps in grouped.items():
        values.append(key)
        if steps[0][0] == INCR:
            values.append(sum(step[2] for step in steps))
        else:
            values.extend(step[3] for step in steps)
    return values


def named(values: list[Any]) -> dict[str, Any]:
    """Positional values as the statement's named parameters."""
    return {f"p{i}": value for i, value in enumerate(values)}


def set_object(patch: Patch) -> str:
    """The set keys as one jsonb object's text."""
    items = patch.set_json.items()
    return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in items) + "}"


def whole_sql(table: sql.Composable, fields: tuple[str, ...], rename: bool, guarded: bool) -> bytes:
    """Write the data worked out in Python, if the stored data is still what was read:
    parameters the new key (``rename``), the new data, the fields, the key, the expected
    handle (``guarded``), the data read."""
    sets = ["key = %s"] if rename else []
    sets.append("data = %s::jsonb")
    sets.extend(f'"{field}" = %s' + ("::jsonb" if field == "meta" else "") for field in fields)
    where = "key = %s" + (" AND handle = %s" if guarded else "") + " AND data = %s::jsonb"
    text = f"UPDATE {{}} SET {', '.join(sets)} WHERE {where}"
    return sql.SQL(text).format(table).as_bytes(None)
