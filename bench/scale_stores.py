"""Bulk filling coatcheck's stores, exactly as they would have written each session.

One ``Backend`` per store kind: it opens stores, fills a ``Population`` with the fastest
bulk path the server has (SQLite ``executemany`` in one transaction, PostgreSQL ``COPY``,
Redis mass insertion through ``redis-cli --pipe``), and checks the result against the
store's own ``create``: the same records written both ways must read back identical, raw
(every column and its type; every hash field, TTL and key encoding). Redis runs on private
``redis-server`` processes, so nothing else shares their memory or keyspace.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from coatcheck.core.record import SessionRecord
from coatcheck.stores import SQLiteStore, Store

from .harness import BenchError
from .scale_sessions import Population

# -- backends ------------------------------------------------------------------------------


class Backend:
    """One kind of store: makes stores, bulk-fills them, checks the fill, counts rows."""

    name = ""

    async def open(self, label: str) -> Store:
        raise NotImplementedError

    def url(self, label: str) -> str:
        """The store URL ``coatcheck purge --store URL`` would be given."""
        raise NotImplementedError

    def fill(self, label: str, pop: Population, template: SessionRecord) -> None:
        raise NotImplementedError

    async def raw(self, store: Store, label: str, pop: Population, i: int) -> Any:
        """Everything the store holds for session ``i`` of ``pop``, for comparison."""
        raise NotImplementedError

    def count(self, label: str) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        return None

    async def verify_fill(
        self, store: Store, label: str, pop: Population, template: SessionRecord
    ) -> None:
        """The bulk rows must equal what the store's own ``create`` writes for the same
        records: written by ``create`` into a scratch store and compared raw."""
        scratch = await self.open("verify")
        try:
            rng = random.Random(f"verify-{pop.tag}")
            sample = [0, pop.count - 1, *(rng.randrange(pop.count) for _ in range(3))]
            for i in sample:
                await scratch.create(pop.record(i, template))
                ours = await self.raw(store, label, pop, i)
                theirs = await self.raw(scratch, "verify", pop, i)
                if ours != theirs:
                    raise BenchError(
                        f"{self.name}: bulk-filled session {i} of {pop.tag} differs from "
                        f"what the store writes:\n bulk:  {ours!r}\n store: {theirs!r}"
                    )
            await self.forget(scratch, "verify", pop, sample)
        finally:
            await scratch.close()

    async def forget(self, store: Store, label: str, pop: Population, indexes: list[int]) -> None:
        for i in indexes:
            await store.delete(pop.ident(i)[1])


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, label: str) -> Path:
        return self.directory / f"{label}.db"

    async def open(self, label: str) -> Store:
        store = SQLiteStore(self.path(label))
        with store.connection():
            pass  # creates the schema (the store's own migration)
        return store

    def url(self, label: str) -> str:
        return f"sqlite:///{self.path(label)}"

    def fill(self, label: str, pop: Population, template: SessionRecord) -> None:
        from coatcheck.stores.sqlite import _COLUMNS, TABLE

        # The same encoding as SQLiteStore.create_sync.
        data = json.dumps(template.data, separators=(",", ":"), ensure_ascii=False)
        meta = json.dumps(template.meta, separators=(",", ":"))
        ua, ip, remember = template.user_agent, template.ip, int(template.remember)

        def rows() -> Iterator[tuple[Any, ...]]:
            return _sql_rows(pop, data, remember, ua, ip, meta)

        import sqlite3

        conn = sqlite3.connect(self.path(label), isolation_level=None)
        try:
            conn.execute("PRAGMA cache_size = -1048576")  # 1 GiB, this connection only
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows()
            )
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    async def raw(self, store: Store, label: str, pop: Population, i: int) -> Any:
        from coatcheck.stores.sqlite import _COLUMNS, TABLE

        assert isinstance(store, SQLiteStore)
        typed = ", ".join(f"{c}, typeof({c})" for c in _COLUMNS.split(", "))
        with store.connection() as conn:
            return conn.execute(
                f"SELECT {typed} FROM {TABLE} WHERE key = ?", (pop.ident(i)[1],)
            ).fetchall()

    def count(self, label: str) -> int:
        import sqlite3

        from coatcheck.stores.sqlite import TABLE

        conn = sqlite3.connect(self.path(label))
        try:
            return int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
        finally:
            conn.close()


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, url: str) -> None:
        self.base_url = url
        self.schema = f"bench_scale_{os.getpid()}_{secrets.token_hex(3)}"
        self._stores: list[Store] = []

    def table(self, label: str) -> str:
        return f"{self.schema}.{label}"

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.base_url, autocommit=True)

    async def start(self) -> None:
        with self._admin() as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")

    async def open(self, label: str) -> Store:
        from coatcheck.stores.postgres import PostgresStore

        store = PostgresStore(self.base_url, table=self.table(label))
        await store.migrate()
        self._stores.append(store)
        return store

    def url(self, label: str) -> str:
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}table={self.table(label)}"

    def fill(self, label: str, pop: Population, template: SessionRecord) -> None:
        from psycopg import sql

        from coatcheck.stores.postgres import _COLUMNS

        # The same values as PostgresStore._create; COPY's text format parses the JSON
        # text into jsonb exactly as the store's ``%s::jsonb`` does.
        data = json.dumps(template.data, separators=(",", ":"), ensure_ascii=False)
        meta = json.dumps(template.meta, separators=(",", ":"), ensure_ascii=False)
        ua, ip, remember = template.user_agent, template.ip, bool(template.remember)
        query = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(self.schema, label),
            sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS),
        )
        with self._admin() as conn:
            with conn.transaction(), conn.cursor() as cur, cur.copy(query) as copy:
                for row in _sql_rows(pop, data, remember, ua, ip, meta):
                    copy.write_row(row)
            # What autovacuum would have done to a table that grew over hours (it is off on
            # some servers, this one included): visibility map, hint bits, statistics.
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(self.schema, label)))

    async def raw(self, store: Store, label: str, pop: Population, i: int) -> Any:
        from psycopg import sql

        with self._admin() as conn:
            return conn.execute(
                sql.SQL("SELECT *, data::text, meta::text FROM {} WHERE key = %s").format(
                    sql.Identifier(self.schema, label)
                ),
                (pop.ident(i)[1],),
            ).fetchall()

    def count(self, label: str) -> int:
        from psycopg import sql

        with self._admin() as conn:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(self.schema, label))
            ).fetchone()
            return int(row[0]) if row else 0

    def vacuum(self, label: str) -> None:
        from psycopg import sql

        with self._admin() as conn:
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(self.schema, label)))

    async def close(self) -> None:
        for store in self._stores:
            with contextlib.suppress(Exception):
                await store.close()
        with contextlib.suppress(Exception), self._admin() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server on a free loopback port, without persistence: nothing else
    shares its memory or its CPU time, and stopping it frees everything."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server is not installed")
        for _ in range(5):
            self.port = _free_port()
            self.process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                    "--logfile",
                    str(self.directory / "redis.log"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.process.poll() is None:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock,
                ):
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
                time.sleep(0.05)
            self.stop()
        raise BenchError("could not start a private redis-server")

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=60)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def pipe(self, chunks: Iterable[bytes]) -> int:
        """Mass insertion (``redis-cli --pipe``): returns the number of replies."""
        binary = shutil.which("redis-cli")
        if binary is None:
            raise BenchError("redis-cli is not installed")
        proc = subprocess.Popen(
            [binary, "-p", str(self.port), "--pipe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
        finally:
            proc.stdin.close()
        output = proc.stdout.read().decode(errors="replace")
        code = proc.wait()
        match = re.search(r"errors: (\d+), replies: (\d+)", output)
        if code != 0 or match is None or match.group(1) != "0":
            raise BenchError(f"redis-cli --pipe failed ({code}): {output.strip()[-500:]}")
        return int(match.group(2))


def _sql_rows(
    pop: Population, data: str, remember: Any, ua: str | None, ip: str | None, meta: str
) -> Iterator[tuple[Any, ...]]:
    """One row per session of ``pop`` in the SQL stores' column order (their ``_COLUMNS``:
    key, handle, user_id, data, created_at, last_seen_at, expires_at, absolute_at, auth_at,
    remember, user_agent, ip, meta), the template's values encoded by the caller."""
    ident, times = pop.ident, pop.times
    for i in range(pop.count):
        _, key, handle, user = ident(i)
        created, last_seen, expires, absolute = times(i)
        row = (key, handle, user, data, created, last_seen, expires, absolute, created)
        yield (*row, remember, ua, ip, meta)


class _Resp:
    """Commands with variable arguments rendered to RESP with one ``%`` per record."""

    def __init__(self, commands: Sequence[Sequence[bytes | str]]) -> None:
        parts: list[bytes] = []
        self.names: list[str] = []
        for command in commands:
            parts.append(b"*%d\r\n" % len(command))
            for arg in command:
                if isinstance(arg, bytes):
                    parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg.replace(b"%", b"%%")))
                else:
                    parts.append(b"$%d\r\n%s\r\n")
                    self.names.append(arg)
        self.format = b"".join(parts)
        self.commands = len(commands)

    def render(self, values: dict[str, bytes]) -> bytes:
        args: list[Any] = []
        for name in self.names:
            value = values[name]
            args += (len(value), value)
        return self.format % tuple(args)


def _num(value: float) -> bytes:
    return repr(float(value)).encode()


def _ms(seconds: float) -> bytes:
    return b"%d" % max(round(seconds * 1000), 1)


class RedisBackend(Backend):
    """Stores on private servers: one per label (``small``, ``large``), so the 10,000-session
    server really holds 10,000 sessions."""

    name = "redis"
    prefix = "coatcheck:"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.servers: dict[str, RedisServer] = {}
        self._stores: list[Store] = []

    def server(self, label: str) -> RedisServer:
        if label == "verify":
            label = "small"
        if label not in self.servers:
            self.servers[label] = RedisServer(self.directory, label).start()
        return self.servers[label]

    def url(self, label: str) -> str:
        prefix = "verify:" if label == "verify" else self.prefix
        return f"redis://127.0.0.1:{self.server(label).port}/0?prefix={prefix}"

    async def open(self, label: str) -> Store:
        from coatcheck.stores.redis import RedisStore

        store = RedisStore.from_url(self.url(label))
        self._stores.append(store)
        return store

    def template(self, template: SessionRecord) -> _Resp:
        """RedisStore's record layout (see its module docstring) as RESP: the hash with its
        TTL at the idle deadline, the handle pointer and the user index entry with theirs
        at the absolute deadline. The store's create also sends DEL and ZREMRANGEBYSCORE
        (no-ops on fresh keys) and two PEXPIREAT (NX, GT) that set the same time on a new
        index: the keys written here are checked to be identical to the store's."""
        # The packed metadata (one per record), then the deadlines as fields of their own.
        fields: list[bytes | str] = [b"m", "meta", b"l", "last_seen", b"e", "expires"]
        fields += [b"a", "absolute"]
        for name, value in template.data.items():
            fields += (
                b"d:" + name.encode(),
                json.dumps(
                    value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
                ).encode(),
            )
        return _Resp(
            [
                [b"HSET", "rec", *fields],
                [b"PEXPIREAT", "rec", "ttl_ms"],
                [b"SET", "ptr", "key", b"PXAT", "abs_ms"],
                [b"ZADD", "idx", "absolute", "handle"],
                [b"PEXPIREAT", "idx", "abs_ms"],
            ]
        )

    def chunks(
        self, pop: Population, resp: _Resp, template: SessionRecord, per_chunk: int = 2000
    ) -> Iterator[bytes]:
        from coatcheck.stores.redis.codec import meta_text

        prefix = self.prefix.encode()
        ident, times, render = pop.ident, pop.times, resp.render
        buffer: list[bytes] = []
        for i in range(pop.count):
            _, key, handle, user = ident(i)
            created, last_seen, expires, absolute = times(i)
            k, h, u = key.encode(), handle.encode(), user.encode()
            buffer.append(
                render(
                    {
                        "rec": prefix + b"s:" + k,
                        "ptr": prefix + b"h:" + h,
                        "idx": prefix + b"u:" + u,
                        "key": k,
                        "handle": h,
                        "user": u,
                        "created": _num(created),
                        "last_seen": _num(last_seen),
                        "expires": _num(expires),
                        "absolute": _num(absolute),
                        "meta": meta_text(
                            dataclasses.replace(
                                template,
                                handle=handle,
                                user_id=user,
                                created_at=created,
                                last_seen_at=last_seen,
                                expires_at=expires,
                                absolute_at=absolute,
                                auth_at=created,
                            )
                        ).encode(),
                        "ttl_ms": _ms(min(expires, absolute)),
                        "abs_ms": _ms(absolute),
                    }
                )
            )
            if len(buffer) >= per_chunk:
                yield b"".join(buffer)
                buffer.clear()
        if buffer:
            yield b"".join(buffer)

    def fill(self, label: str, pop: Population, template: SessionRecord) -> None:
        resp = self.template(template)
        replies = self.server(label).pipe(self.chunks(pop, resp, template))
        if replies != pop.count * resp.commands:
            raise BenchError(f"redis: {replies} replies for {pop.count} sessions")

    async def raw(self, store: Store, label: str, pop: Population, i: int) -> Any:
        prefix = "verify:" if label == "verify" else self.prefix
        _, key, handle, user = pop.ident(i)
        client = self.server(label).client()
        try:
            out: dict[str, Any] = {}
            for family, name in (("s", key), ("h", handle), ("u", user)):
                k = f"{prefix}{family}:{name}"
                kind = client.type(k)
                value: Any
                if kind == "hash":  # field order: insertion order only while a listpack
                    value = sorted(client.hgetall(k).items())
                elif kind == "string":
                    value = client.get(k)
                elif kind == "zset":
                    value = client.zrange(k, 0, -1, withscores=True)
                else:
                    value = None
                out[family] = (
                    kind,
                    client.object("encoding", k) if value is not None else None,
                    value,
                    client.execute_command("PEXPIRETIME", k),
                )
            return out
        finally:
            client.close()

    async def forget(self, store: Store, label: str, pop: Population, indexes: list[int]) -> None:
        client = self.server(label).client()
        try:
            for i in indexes:
                _, key, handle, user = pop.ident(i)
                client.delete(f"verify:s:{key}", f"verify:h:{handle}", f"verify:u:{user}")
        finally:
            client.close()

    def count(self, label: str) -> int:
        client = self.server(label).client()
        try:
            return sum(1 for _ in client.scan_iter(match=f"{self.prefix}s:*", count=5000))
        finally:
            client.close()

    async def close(self) -> None:
        for store in self._stores:
            with contextlib.suppress(Exception):
                await store.close()
        for server in self.servers.values():
            server.stop()


def unlink_chunks(
    prefix: str, pop: Population, families: Sequence[str] = ("h", "u"), per_chunk: int = 5000
) -> Iterator[bytes]:
    """UNLINK commands (RESP) for the given key families of every session of ``pop``."""
    buffer: list[bytes] = []
    for i in range(pop.count):
        _, key, handle, user = pop.ident(i)
        names = {"s": key, "h": handle, "u": user}
        args = [f"{prefix}{family}:{names[family]}".encode() for family in families]
        buffer.append(
            b"*%d\r\n$6\r\nUNLINK\r\n" % (len(args) + 1)
            + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        )
        if len(buffer) >= per_chunk:
            yield b"".join(buffer)
            buffer.clear()
    if buffer:
        yield b"".join(buffer)


def settle(client: Any) -> int:
    """used_memory once it stops moving: Redis grows a hash table incrementally, keeping
    both tables meanwhile, and measuring then would count both."""
    previous = -1
    for _ in range(50):
        time.sleep(0.1)
        current = int(client.info("memory")["used_memory"])
        if current == previous:
            return current
        previous = current
    return previous
