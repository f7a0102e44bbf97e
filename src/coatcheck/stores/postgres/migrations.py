"""Schema versions of the PostgreSQL store, and the procedure that brings a table up to date.

Several nodes of an app may start at once against one database, so migrating is a
procedure (a generator of ``Call``) that the store runs inside one transaction: the common
case (already current) takes no lock and runs no DDL; otherwise a transaction-scoped
advisory lock serializes the nodes and the version is read again under it, so each
migration runs exactly once. A schema newer than this code is refused rather than used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from psycopg import sql

from coatcheck.core.steps import Steps
from coatcheck.errors import StoreUnavailable
from coatcheck.stores.postgres.sql import Call, Statements

MIGRATIONS: Sequence[Sequence[str]] = (
    # 1: the sessions table, its expiry index and its per-user index. Times are epoch
    # seconds (double precision) so they round-trip the injected clock's floats exactly.
    (
        """
        CREATE TABLE {table} (
            key text PRIMARY KEY,
            handle text NOT NULL UNIQUE,
            user_id text,
            data jsonb NOT NULL,
            created_at double precision NOT NULL,
            last_seen_at double precision NOT NULL,
            expires_at double precision NOT NULL,
            absolute_at double precision NOT NULL,
            auth_at double precision,
            remember boolean NOT NULL DEFAULT false,
            user_agent text,
            ip text,
            meta jsonb NOT NULL DEFAULT '{{}}'
        )
        """,
        "CREATE INDEX {expires_index} ON {table} (expires_at)",
        "CREATE INDEX {user_index} ON {table} (user_id) WHERE user_id IS NOT NULL",
    ),
    # 2: per-session locks (``Lockable``): a row per held lock and the end of its lease.
    # UNLOGGED: a lock is worth nothing after a crash (its lease is the safety net), so it
    # costs no WAL; a failover to a replica frees every lock, which only ends the wait.
    (
        """
        CREATE UNLOGGED TABLE {locks} (
            key text PRIMARY KEY,
            owner text NOT NULL,
            expires_at double precision NOT NULL
        )
        """,
    ),
)
"""Schema migrations in order; ``{table}`` and the index names are filled in per table."""

SCHEMA_VERSION = len(MIGRATIONS)

MIGRATION_LOCK = int.from_bytes(hashlib.sha256(b"coatcheck.migrate").digest()[:8], signed=True)
"""Advisory lock key taken by every migration, whatever the table: creating the version
table concurrently under different locks would collide in PostgreSQL's catalog."""


def migration_statements(q: Statements, number: int) -> list[bytes]:
    """The statements of migration ``number`` (0-based) for ``q``'s table."""
    names = {
        "table": q.table,
        "locks": q.locks_table,
        "expires_index": sql.Identifier(f"{q.name}_expires_idx"),
        "user_index": sql.Identifier(f"{q.name}_user_idx"),
    }
    return [sql.SQL(s).format(**names).as_bytes(None) for s in MIGRATIONS[number]]


def check_version(version: int, where: str) -> bool:
    """True when the table is current; refuses one migrated by a newer coatcheck."""
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"PostgreSQL store {where}: schema version {version} is newer than "
            f"this coatcheck ({SCHEMA_VERSION}); upgrade coatcheck"
        )
    return version == SCHEMA_VERSION


def migrate_steps(q: Statements, table: str, where: str) -> Steps[None]:
    """Bring ``table`` to SCHEMA_VERSION; must run inside one transaction (the advisory
    lock is transaction-scoped). ``where`` names the store in error messages."""
    exists = yield Call(q.version_table_exists, (q.version_table_name,), "one")
    if exists[0]:
        row = yield Call(q.read_version, (table,), "one")
        if row is not None and check_version(row[0], where):
            return
    yield Call(q.lock, (MIGRATION_LOCK,), "nothing")
    yield Call(q.create_version_table, (), "nothing")
    row = yield Call(q.read_version, (table,), "one")
    version = row[0] if row is not None else 0
    if check_version(version, where):
        return
    for number in range(version, SCHEMA_VERSION):
        for statement in migration_statements(q, number):
            yield Call(statement, (), "nothing")
    yield Call(q.write_version, (table, SCHEMA_VERSION), "nothing")
