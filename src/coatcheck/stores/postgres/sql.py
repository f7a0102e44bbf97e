"""The SQL text of the PostgreSQL store, and the values that cross it.

Every statement is composed once per table as bytes (identifiers quoted by psycopg, never
pasted), so psycopg sees identical query text on every call and can prepare it. A store
operation yields ``Call`` objects (a statement, its parameters, what to read back) and an
executor runs each one; nothing in this module does I/O.

Limits of ``jsonb`` live here too: strings may not contain U+0000 (refused as
SessionDataError, naming the key, before the server is asked).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import sql

from coatcheck.core.record import SessionRecord
from coatcheck.errors import SessionDataError

DEFAULT_TABLE = "coatcheck_sessions"
VERSION_TABLE = "coatcheck_schema"
"""One row per sessions table: the schema version its migrations reached."""

COLUMNS = (
    "key",
    "handle",
    "user_id",
    "data",
    "created_at",
    "last_seen_at",
    "expires_at",
    "absolute_at",
    "auth_at",
    "remember",
    "user_agent",
    "ip",
    "meta",
)

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
"""An unquoted PostgreSQL identifier; a table name is one, or ``schema.name``."""

_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""A NUL character in JSON text: ``\\u0000`` after an even number of backslashes."""

Want = Literal["one", "all", "rowcount", "nothing"]


@dataclass(frozen=True, slots=True)
class Call:
    """One SQL statement and what its caller wants back: the operation a store procedure
    yields and an executor runs on a connection."""

    query: bytes
    params: Sequence[Any] | Mapping[str, Any]
    """Positional, or named (``%(p0)s``) for a statement that reads a value twice."""
    want: Want


def row_to_record(row: Sequence[Any]) -> SessionRecord:
    return SessionRecord(
        key=row[0],
        handle=row[1],
        user_id=row[2],
        data=row[3],
        created_at=row[4],
        last_seen_at=row[5],
        expires_at=row[6],
        absolute_at=row[7],
        auth_at=row[8],
        remember=row[9],
        user_agent=row[10],
        ip=row[11],
        meta=row[12],
    )


def check_json(key: str, text: str) -> None:
    """jsonb cannot hold U+0000; say which key instead of a 503 that no retry can fix."""
    if "\x00" in key or ("\\u0000" in text and _NUL_ESCAPE.search(text)):
        raise SessionDataError(
            f"session[{key!r}] cannot be stored in PostgreSQL: jsonb cannot hold the "
            "character U+0000"
        )


def _key_statements(q: Callable[[str], bytes]) -> tuple[bytes, bytes]:
    """The read of one record by its key, and the page of records after a key (in the
    order of the keys, for ``Scannable.scan_sync``)."""
    return (
        q("SELECT {cols} FROM {table} WHERE key = %s"),
        q("SELECT {cols} FROM {table} WHERE key > %s ORDER BY key LIMIT %s"),
    )


def field_value(name: str, value: Any) -> Any:
    """A patched metadata field as the UPDATE's parameter."""
    if name == "meta":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if name == "remember":
        return bool(value)
    return value


class Statements:
    """Every statement the store runs, composed once per table as bytes.

    Patch statements depend on which fields a patch sets; the few shapes that occur
    (touch, update, login, ...) are composed on first use and cached, so psycopg sees
    identical query text and can prepare it.
    """

    def __init__(self, parts: Sequence[str]) -> None:
        schema, name = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
        self.table = table = sql.Identifier(*parts)
        self.name = name
        """The table's own name (without its schema): index names derive from it."""
        locks = sql.Identifier(*(schema, f"{name}_locks") if schema else (f"{name}_locks",))
        self.locks_table = locks  # per-session locks, beside the sessions table
        version_parts = (schema, VERSION_TABLE) if schema else (VERSION_TABLE,)
        self.version_table_name = ".".join(version_parts)
        version_table = sql.Identifier(*version_parts)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)

        def q(text: str) -> bytes:
            composed = sql.SQL(text).format(table=table, cols=cols, vt=version_table, locks=locks)
            return composed.as_bytes(None)

        self.get, self.scan = _key_statements(q)
        self.handle_of = q("SELECT handle FROM {table} WHERE key = %s")
        self.get_data = q("SELECT data, handle FROM {table} WHERE key = %s")
        self.insert = q(
            "INSERT INTO {table} ({cols}) VALUES "
            "(%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
        )
        self.delete = q("DELETE FROM {table} WHERE key = %s")
        self.get_by_handle = q("SELECT {cols} FROM {table} WHERE handle = %s")
        self.list_user = q(
            "SELECT {cols} FROM {table} WHERE user_id = %s AND expires_at > %s ORDER BY created_at"
        )
        self.delete_handle = q("DELETE FROM {table} WHERE handle = %s RETURNING {cols}")
        self.delete_user = q(
            "DELETE FROM {table} WHERE user_id = %s AND handle IS DISTINCT FROM %s"
        )
        self.purge = q(
            "WITH doomed AS (SELECT key FROM {table} WHERE expires_at <= %s "
            "LIMIT %s FOR UPDATE SKIP LOCKED) "
            "DELETE FROM {table} AS t USING doomed WHERE t.key = doomed.key"
        )
        self.count = q("SELECT count(*) FROM {table} WHERE expires_at > %s")
        self.count_soon = q(
            "SELECT count(*), count(*) FILTER (WHERE expires_at <= %s) FROM {table} "
            "WHERE expires_at > %s"
        )
        self.top_users = q(
            "SELECT user_id, count(*) AS n FROM {table} "
            "WHERE user_id IS NOT NULL AND expires_at > %s "
            "GROUP BY user_id ORDER BY n DESC, user_id LIMIT %s"
        )
        self.acquire_lock, self.release_lock = _lock_statements(q)
        self.version_table_exists = b"SELECT to_regclass(%s) IS NOT NULL"
        self.lock = b"SELECT pg_advisory_xact_lock(%s)"
        self.create_version_table = q(
            "CREATE TABLE IF NOT EXISTS {vt} (name text PRIMARY KEY, "
            "version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        self.read_version = q("SELECT version FROM {vt} WHERE name = %s")
        self.write_version = q(
            "INSERT INTO {vt} (name, version) VALUES (%s, %s) ON CONFLICT (name) "
            "DO UPDATE SET version = EXCLUDED.version, applied_at = now()"
        )
        self._updates: dict[tuple[bool, bool, tuple[str, ...], bool], bytes] = {}

    def update(self, rename: bool, data: bool, fields: tuple[str, ...], guarded: bool) -> bytes:
        """``UPDATE ... WHERE key = %s`` (``AND handle = %s`` when ``guarded``)."""
        shape = (rename, data, fields, guarded)
        query = self._updates.get(shape)
        if query is None:
            sets: list[sql.Composable] = []
            if rename:
                sets.append(sql.SQL("key = %s"))
            if data:
                sets.append(sql.SQL("data = (data - %s::text[]) || %s::jsonb"))
            for name in fields:
                cast = "::jsonb" if name == "meta" else ""
                sets.append(sql.SQL("{} = %s" + cast).format(sql.Identifier(name)))
            where = "key = %s AND handle = %s" if guarded else "key = %s"
            query = (
                sql.SQL("UPDATE {} SET {} WHERE " + where)
                .format(self.table, sql.SQL(", ").join(sets))
                .as_bytes(None)
            )
            self._updates[shape] = query
        return query


def _lock_statements(q: Any) -> tuple[bytes, bytes]:
    """Take a free lock (or one whose lease ended) in one statement; free it if still its
    owner's."""
    return (
        q(
            "INSERT INTO {locks} AS l (key, owner, expires_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, "
            "expires_at = EXCLUDED.expires_at WHERE l.expires_at <= %s"
        ),
        q("DELETE FROM {locks} WHERE key = %s AND owner = %s"),
    )
