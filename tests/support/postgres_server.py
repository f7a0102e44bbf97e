"""PostgreSQL for tests: the shared server on 127.0.0.1:5432, and private clusters.

``scratch_table()`` gives each test its own sessions table in the shared ``test`` database
and removes every trace afterwards (table, version row, server connections). When the
server cannot be reached the test is skipped with the reason; CI turns skips into failures.

``PrivateCluster`` is a throwaway cluster (initdb in a temporary directory) that a fault
test may stop and restart at will without disturbing anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from coatcheck.stores.postgres import PostgresStore

SHARED_URL = os.environ.get("COATCHECK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

_unreachable: str | None = None


def admin_connect(url: str = SHARED_URL) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the shared server, or skip the test if it is down."""
    global _unreachable
    if _unreachable is not None:
        pytest.skip(_unreachable)
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unreachable = f"PostgreSQL not reachable at {url}: {str(exc).strip()}"
        pytest.skip(_unreachable)


def store_url(table: str, url: str = SHARED_URL, **options: object) -> str:
    """A store URL for ``table``; ``application_name`` tags the store's connections so
    the cleanup can end them."""
    query = "&".join(f"{k}={v}" for k, v in {"table": table, **options}.items())
    return f"{url}?application_name={table}&{query}"


def drop_table(conn: psycopg.Connection[tuple[object, ...]], table: str) -> None:
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = %s AND pid <> pg_backend_pid()",
        (table,),
    )
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(f"{table}_locks")))
    with contextlib.suppress(psycopg.errors.UndefinedTable):
        conn.execute("DELETE FROM coatcheck_schema WHERE name = %s", (table,))


@contextlib.contextmanager
def scratch_table() -> Iterator[str]:
    """A fresh table name (``cc_<random>``), dropped afterwards with its version row.

    Connections tagged with the table's name are terminated first: an async pool cannot
    be closed from synchronous teardown code, and its sockets must not outlive the test.
    """
    admin = admin_connect()
    table = f"cc_{secrets.token_hex(6)}"
    try:
        yield table
    finally:
        try:
            drop_table(admin, table)
        finally:
            admin.close()


def close_everywhere(store: PostgresStore) -> None:
    """Close every pool of ``store`` from a test thread: each async pool on the event loop
    that owns it (a uvicorn thread's, say), while that loop still runs."""
    for loop in list(store._pools.loops):
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(store.close(), loop).result(timeout=10)
    store.close_sync()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"PostgreSQL server binary {name!r} not installed")
    return path


class PrivateCluster:
    """A PostgreSQL cluster of our own on a free loopback port (trust auth).

    initdb refuses to run as root, so as root every server command runs as the
    ``postgres`` system user, in a temporary directory that user owns.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="coatcheck-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log = self.root / "server.log"
        self.socket_dir.mkdir()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n{log}"
            )

    def init(self) -> None:
        self._run(
            _pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", "30", "start",
        )  # fmt: skip

    def restart(self) -> None:
        """Fast shutdown and start again with the same options (one pg_ctl command)."""
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w",
            "restart",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
