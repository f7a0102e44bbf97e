"""The SQLite store's per-session locks (``Lockable``): one row per held lock in
``coatcheck_locks``, taken by one upsert under ``BEGIN IMMEDIATE`` and freed by its owner."""

from __future__ import annotations

import sqlite3

LOCKS = "coatcheck_locks"


_ACQUIRE_SQL = (
    f"INSERT INTO {LOCKS} (key, owner, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
    f"WHERE {LOCKS}.expires_at <= ?"
)
"""Take a free lock, or one whose lease ended, in one statement."""


def _acquire_lock(conn: sqlite3.Connection, key: str, owner: str, now: float, lease: float) -> bool:
    """Under ``BEGIN IMMEDIATE``: the write lock is taken before the row is looked at, so
    two processes never both see the lock free (a lone statement would be atomic too; the
    explicit transaction says so, and keeps a busy database a wait, not an error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        taken = conn.execute(_ACQUIRE_SQL, (key, owner, now + lease, now)).rowcount == 1
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return taken


def _release_lock(conn: sqlite3.Connection, key: str, owner: str) -> bool:
    """A lock's row goes when its holder frees it; one a crashed holder left is taken over
    at the key's next lock (a row of a few bytes per crash, so no purge of its own)."""
    sql = f"DELETE FROM {LOCKS} WHERE key = ? AND owner = ?"
    return conn.execute(sql, (key, owner)).rowcount == 1
