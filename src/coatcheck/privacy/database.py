"""The SQL database the privacy layer writes its own tables to (the activity log, the
tombstones): SQLite or PostgreSQL, named by URL.

The writes are few (a login, a revocation, an erasure) and off the request path, so one
connection per process, behind a lock, is enough; statements are written once with ``?``
placeholders and translated for psycopg. SQLite connections run with
``PRAGMA secure_delete = ON``, so a deleted row's bytes are overwritten in the file, and
``scrub`` checkpoints the WAL (TRUNCATE) so no old copy of a page survives there either
(GDPR Art. 17: erased means gone from the files too).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from coatcheck.errors import ConfigError, StoreUnavailable

T = TypeVar("T")

PREFIX_PATTERN: Final = re.compile(r"[a-z_][a-z0-9_]{0,40}")
DEFAULT_PREFIX: Final = "coatcheck_"
POSTGRES_STORE_OPTIONS: Final = frozenset(
    {
        "table",
        "pool_min",
        "pool_max",
        "pool_timeout",
        "statement_timeout",
        "reconnect_timeout",
        "prepare_threshold",
        "migrate",
    }
)
"""Options of a PostgreSQL *store* URL (``stores.postgres.url``), not libpq's: a database
URL derived from a store URL drops them."""


class Cursor(Protocol):
    """What a statement runner gets: the part of a DB-API cursor both drivers share."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...


class Database:
    """One SQL database: ``run(work)`` calls ``work(cursor)`` inside one transaction."""

    dialect: str
    prefix: str
    """Table names start with it (``coatcheck_activity``, ``coatcheck_tombstones``)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if PREFIX_PATTERN.fullmatch(prefix) is None:
            raise ConfigError(f"table prefix {prefix!r}: lower-case letters, digits and _ only")
        self.prefix = prefix
        self._lock = threading.Lock()
        self._schemas: set[str] = set()

    def table(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def run(self, work: Callable[[Cursor], T]) -> T:
        raise NotImplementedError

    def ensure(self, name: str, statements: Sequence[str]) -> None:
        """Create the tables of ``name`` (``CREATE ... IF NOT EXISTS`` statements) once per
        process."""
        if name in self._schemas:
            return

        def create(cur: Cursor) -> None:
            self._serialize_ddl(cur)
            for statement in statements:
                cur.execute(statement)

        self.run(create)
        self._schemas.add(name)

    def _serialize_ddl(self, cur: Cursor) -> None:
        """Nothing to do on SQLite, whose writers are serialized already."""

    def scrub(self) -> None:
        """Leave no copy of deleted rows in the database's files (SQLite's WAL)."""

    def close(self) -> None:
        raise NotImplementedError

    async def arun(self, work: Callable[[Cursor], T]) -> T:
        """``run`` on a worker thread, so an event loop never waits on the database."""
        return await asyncio.to_thread(self.run, work)


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = 5.0) -> None:
        super().__init__(prefix)
        self.path = path
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA secure_delete = ON")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            self._conn = conn
        return self._conn

    def run(self, work: Callable[[Cursor], T]) -> T:
        with self._lock:
            try:
                conn = self._connection()
                cur = conn.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    result = work(cur)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"privacy database {self.path!r}: {exc}") from exc

    def scrub(self) -> None:
        """Copy the WAL into the database (whose freed pages ``secure_delete`` zeroed) and
        truncate it to nothing; StoreUnavailable when a reader held it back."""
        if self.path == ":memory:":
            return
        with self._lock:
            try:
                conn = self._connection()
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"privacy database {self.path!r}: {exc}") from exc
        if busy:
            raise StoreUnavailable(
                f"{self.path}: the WAL checkpoint could not complete (another connection was "
                "reading); run the erasure again"
            )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, conninfo: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__(prefix)
        self.conninfo = conninfo
        self._conn: Any = None

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo, connect_timeout=5)
        return self._conn

    def run(self, work: Callable[[Cursor], T]) -> T:
        import psycopg

        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction(), conn.cursor() as cur:
                    return work(_Translating(cur))
            except psycopg.Error as exc:
                if self._conn is not None and self._conn.broken:
                    self._conn = None
                raise StoreUnavailable(f"privacy database: {exc}") from exc

    def _serialize_ddl(self, cur: Cursor) -> None:
        # Two nodes creating the same tables at once would collide in the catalog.
        cur.execute("SELECT pg_advisory_xact_lock(?)", (0x636F6174636865,))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _Translating:
    """A psycopg cursor taking the ``?`` placeholders the statements are written with."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cur.execute(sql.replace("?", "%s"), params)

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall())

    def fetchone(self) -> Any:
        return self._cur.fetchone()


def database_from_url(url: str) -> Database:
    """``sqlite:///path.db`` or ``postgresql://...``, with an optional ``prefix`` query
    option for the table names (``coatcheck_`` by default). A store URL works too: the
    options only a store takes are dropped, and a PostgreSQL store's ``table=t`` gives the
    prefix ``t_`` (lower-cased, other characters as ``_``) so two stores in one database
    keep apart."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = parse_qsl(parts.query.replace("+", "%2B"), keep_blank_values=True)
    ours = {k: v for k, v in options if k == "prefix"}
    if scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if parts.netloc or not path:
            raise ConfigError(f"sqlite URL {url!r}: use sqlite:///path")
        timeout = {k: v for k, v in options if k == "timeout"}
        return SQLiteDatabase(
            path,
            prefix=ours.get("prefix", DEFAULT_PREFIX),
            timeout=float(timeout.get("timeout", 5.0)),
        )
    if scheme in ("postgresql", "postgres"):
        table = {k: v for k, v in options if k == "table"}.get("table")
        derived = re.sub(r"[^a-z0-9_]", "_", table.lower())[:40] + "_" if table else None
        prefix = ours.get("prefix", derived or DEFAULT_PREFIX)
        theirs = [(k, v) for k, v in options if k not in POSTGRES_STORE_OPTIONS | {"prefix"}]
        query = urlencode(theirs, quote_via=quote)
        return PostgresDatabase(
            urlunsplit(parts._replace(scheme="postgresql", query=query)), prefix=prefix
        )
    raise ConfigError(
        f"the privacy database must be sqlite:// or postgresql://, not {scheme or url!r}"
    )


def shares_database(store_url: str) -> bool:
    """Can the privacy tables live in the database of the store ``store_url`` names?"""
    return urlsplit(store_url).scheme.lower() in ("sqlite", "postgresql", "postgres")


def deployment_database(store_url: str, database_url: str | None) -> Database | None:
    """The privacy database of a deployment: ``database_url`` when set
    (``COATCHECK_PRIVACY_DB``), else the store's own database when it is SQL, else None."""
    if database_url:
        return database_from_url(database_url)
    if shares_database(store_url):
        return database_from_url(store_url)
    return None
