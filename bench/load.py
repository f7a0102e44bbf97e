"""Under concurrency: requests per second of a real server, with and without the session layer.

Issue 6 asks for a load generator driving an app under uvicorn on loopback with 64
concurrent clients, reporting requests per second with and without sessions on each store.
Here the app is ``bench/apps/load_app.py`` (``/read`` and ``/write``, the handlers of the
in-process scenarios) in its own uvicorn process, one process per configuration: bare, and
coatcheck on memory, SQLite, Redis and PostgreSQL.

The load generator is in-process Python, not wrk: each of the 64 clients is a browser with
its own keep-alive HTTP/1.1 connection and its own session cookie, sending one request at a
time (a closed loop), so every answer can be checked: a read must answer that browser's
counter, a write the counter plus one. A configuration that loses or mixes up state fails
the run instead of reporting a fast number; after timing, the counters are also summed
straight from the store (Redis, PostgreSQL, SQLite) and must equal what the browsers wrote.

Method: every server is started first; each gets warm-up traffic; then ``BENCH_LOAD_ROUNDS``
rounds, each driving every configuration for ``BENCH_LOAD_SECONDS`` of reads and as long of
writes, in an order rotated per round (interleaved, as the in-process harness does, so drift
and foreign load hit every configuration alike). Reported: the median over rounds of
requests per second (min and max beside it), its ratio to the bare server's, and latency
percentiles over every request of the configuration.

What it says and what it does not: the client runs on the same 2-core machine as the
server (and as Redis and PostgreSQL), so all of them compete for the CPU, as on a small
production box; uvicorn runs one worker with whatever HTTP parser and loop it finds (see
the header: without httptools and uvloop it is h11 and asyncio). Writes are ``GET /write``
so that no CSRF token is needed: a GET is safe, so coatcheck does not check it; a real app
writes on POST and pays the CSRF check as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .harness import (
    BenchError,
    CaseResult,
    Role,
    Scenario,
    Settings,
    WorkloadResult,
    _env_int,
)

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
COOKIE = b"__Host-session"
USER_AGENT = b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
STORES = ("memory", "sqlite", "redis", "postgres")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BenchError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise BenchError(f"{name} must be positive, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class LoadSettings:
    clients: int = 64
    window: float = 1.0
    """Seconds of traffic per configuration, workload and round."""
    rounds: int = 5
    warmup: float = 0.5
    """Seconds of untimed traffic per configuration and workload first."""
    stores: tuple[str, ...] = STORES

    @classmethod
    def from_env(cls) -> LoadSettings:
        stores = tuple(
            s.strip()
            for s in os.environ.get("BENCH_LOAD_STORES", ",".join(STORES)).split(",")
            if s.strip()
        )
        unknown = [s for s in stores if s not in STORES]
        if unknown:
            raise BenchError(f"BENCH_LOAD_STORES: unknown store(s) {unknown}; known: {STORES}")
        return cls(
            clients=_env_int("BENCH_LOAD_CLIENTS", 64, 1),
            window=_env_float("BENCH_LOAD_SECONDS", 1.0),
            rounds=_env_int("BENCH_LOAD_ROUNDS", 5, 1),
            warmup=_env_float("BENCH_LOAD_WARMUP", 0.5),
            stores=stores,
        )


# -- the client ----------------------------------------------------------------------------


class Browser:
    """One keep-alive HTTP/1.1 connection with a cookie jar of one session cookie.

    ``n`` is what this browser's session must hold; every answer is checked against it.
    Parsing is the minimum a correct client needs (status, Content-Length, Set-Cookie),
    so the generator spends little CPU that the server could use.
    """

    __slots__ = ("cookie", "host", "keeps_state", "n", "port", "reader", "requests", "writer")

    def __init__(self, port: int, keeps_state: bool) -> None:
        self.host = b"127.0.0.1:%d" % port
        self.port = port
        self.keeps_state = keeps_state
        self.cookie: bytes | None = None
        self.n = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.requests: dict[bytes, bytes] = {}

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    def _request(self, path: bytes) -> bytes:
        request = self.requests.get(path)
        if request is None:
            cookie = b"Cookie: %s=%s\r\n" % (COOKIE, self.cookie) if self.cookie else b""
            request = (
                b"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
                b"Accept: text/html,*/*;q=0.8\r\nAccept-Language: en-GB,en;q=0.7\r\n%s\r\n"
            ) % (path, self.host, USER_AGENT, cookie)
            self.requests[path] = request
        return request

    async def get(self, path: bytes) -> tuple[int, bytes]:
        head = b""
        for attempt in (1, 2):
            if self.writer is None:
                await self.connect()
            assert self.reader is not None and self.writer is not None
            self.writer.write(self._request(path))
            try:
                head = await self.reader.readuntil(b"\r\n\r\n")
                break
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                # The server closed an idle keep-alive connection before reading the
                # request: reconnect and send it again, as a browser does. Never twice, and
                # never after a partial answer (the request may have run).
                partial = getattr(exc, "partial", b"")
                self.close()
                if partial or attempt == 2:
                    raise BenchError(f"GET {path.decode()}: connection failed: {exc!r}") from exc
        assert self.reader is not None
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"set-cookie":
                self._set_cookie(value.strip())
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    def _set_cookie(self, header: bytes) -> None:
        pair, _, attributes = header.partition(b";")
        name, _, value = pair.partition(b"=")
        if name.strip() != COOKIE:
            return
        gone = not value.strip() or b"max-age=0" in attributes.lower()
        self.cookie = None if gone else value.strip()
        self.requests.clear()

    async def call(self, path: bytes, expect: int) -> None:
        status, body = await self.get(path)
        if status != 200 or body != b"%d" % expect:
            raise BenchError(
                f"GET {path.decode()} answered {status} {body[:80]!r}, expected {expect}"
            )

    async def read(self) -> None:
        await self.call(b"/read", self.n)

    async def write(self) -> None:
        if not self.keeps_state:
            await self.call(b"/write", 1)
            return
        await self.call(b"/write", self.n + 1)
        self.n += 1


@dataclass(slots=True)
class Window:
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


async def drive(browsers: list[Browser], write: bool, seconds: float) -> Window:
    """Every browser sends requests back to back until ``seconds`` have passed."""
    latencies: list[float] = []
    clock = time.perf_counter

    async def one(browser: Browser) -> int:
        step = browser.write if write else browser.read
        done = 0
        while clock() < deadline:
            started = clock()
            await step()
            latencies.append(clock() - started)
            done += 1
        return done

    start = clock()
    deadline = start + seconds
    counts = await asyncio.gather(*(one(b) for b in browsers))
    return Window(sum(counts), clock() - start, latencies)


# -- the servers ---------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    name: str
    role: Role
    store_url: str | None
    """None for the bare app."""
    stored_total: Any = None
    """Returns the sum of every session's counter, read straight from the store."""
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    log: Any = None
    browsers: list[Browser] = field(default_factory=list)
    windows: dict[str, list[Window]] = field(default_factory=lambda: {"read": [], "write": []})

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = listener.getsockname()[1]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        if self.store_url is not None:
            env["COATCHECK_STORE"] = self.store_url
        command = [sys.executable, "-m", "bench.apps.load_app", "--fd", str(listener.fileno())]
        # Idle keep-alive connections must outlive the other configurations' windows.
        command += ["--keep-alive", "600"] + (["--bare"] if self.store_url is None else [])
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop(): outlives this call)
        try:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                pass_fds=(listener.fileno(),),
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
        finally:
            listener.close()  # the child holds its own copy

    def output(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        text: str = self.log.read().decode(errors="replace").strip()
        return text[-2000:]

    async def ready(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.name}: server exited with {self.process.returncode}:\n{self.output()}"
                )
            probe = Browser(self.port, False)
            try:
                status, _ = await asyncio.wait_for(probe.get(b"/read"), 5)
                if status == 200:
                    return
                raise BenchError(f"{self.name}: /read answered {status}:\n{self.output()}")
            except (TimeoutError, OSError, BenchError):
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"{self.name}: server not ready in {within:.0f} s:\n{self.output()}"
                    ) from None
                await asyncio.sleep(0.1)
            finally:
                probe.close()

    async def establish(self, clients: int) -> None:
        """64 browsers, each proven to keep its own session: 3 writes, then a read of 3
        (the bare app answers 1 to every write and 0 to every read)."""
        keeps = self.store_url is not None
        self.browsers = [Browser(self.port, keeps) for _ in range(clients)]

        async def start(browser: Browser) -> None:
            await browser.connect()
            for _ in range(3):
                await browser.write()
            await browser.read()
            if keeps and browser.cookie is None:
                raise BenchError(f"{self.name}: no session cookie after three writes")

        await asyncio.gather(*(start(b) for b in self.browsers))
        if keeps and len({b.cookie for b in self.browsers}) != clients:
            raise BenchError(f"{self.name}: browsers share a session cookie")
        await self.stranger()

    async def stranger(self) -> None:
        """A browser without a cookie sees no one's state."""
        stranger = Browser(self.port, False)
        try:
            await stranger.read()
        finally:
            stranger.close()

    async def verify(self) -> None:
        """After timing: every browser reads back its counter, and the store holds exactly
        the sum of what they wrote."""
        await asyncio.gather(*(b.read() for b in self.browsers))
        await self.stranger()
        if self.stored_total is not None:
            expected = sum(b.n for b in self.browsers)
            total = await asyncio.to_thread(self.stored_total)
            if total != expected:
                raise BenchError(
                    f"{self.name}: the store holds counters summing to {total}; the "
                    f"browsers wrote {expected}"
                )

    def stop(self) -> None:
        for browser in self.browsers:
            browser.close()
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # uvicorn shuts down gracefully
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.log is not None:
            self.log.close()
            self.log = None


# -- stores --------------------------------------------------------------------------------


class Stores:
    """The store URLs of one run, each in its own namespace, and their cleanup."""

    def __init__(self, directory: Path) -> None:
        self.id = secrets.token_hex(4)
        self.directory = directory
        self.prefix = f"coatcheck-bench-load-{self.id}:"
        self.table = f"coatcheck_bench_load_{self.id}"
        self.notes: list[str] = []
        self._cleanups: list[Any] = []

    def server(self, store: str) -> Server:
        if store == "memory":
            return Server("coatcheck memory", Role.COATCHECK, "memory://")
        if store == "sqlite":
            path = self.directory / "sessions.db"

            def sqlite_total() -> int:
                with contextlib.closing(sqlite3.connect(path)) as db:
                    row = db.execute(
                        "SELECT coalesce(sum(json_extract(data, '$.n')), 0) FROM coatcheck_sessions"
                    ).fetchone()
                return int(row[0])

            self.notes.append(f"sqlite: {sqlite3.sqlite_version} (WAL), temporary file")
            return Server("coatcheck sqlite", Role.COATCHECK, f"sqlite:///{path}", sqlite_total)
        if store == "redis":
            return self._redis()
        return self._postgres()

    def _redis(self) -> Server:
        import redis

        client: Any = redis.Redis.from_url(
            REDIS_URL, decode_responses=True, socket_connect_timeout=2, socket_timeout=10
        )
        try:
            info = client.info("server")
        except (redis.RedisError, OSError) as exc:
            client.close()
            raise BenchError(
                f"scenario load needs a Redis server at {REDIS_URL} (set BENCH_REDIS_URL, or "
                f"leave redis out of BENCH_LOAD_STORES): {exc}"
            ) from exc
        self.notes.append(f"redis: server {info.get('redis_version', '?')} at {REDIS_URL}")

        def keys() -> Iterator[str]:
            yield from client.scan_iter(match=self.prefix + "*", count=1000)

        def redis_total() -> int:
            total = 0
            for key in client.scan_iter(match=self.prefix + "s:*", count=1000):
                raw = client.hget(key, "d:n")  # a session value is a "d:<name>" field
                total += int(raw) if raw is not None else 0
            return total

        def cleanup() -> None:
            try:
                batch = list(keys())
                for start in range(0, len(batch), 500):
                    client.unlink(*batch[start : start + 500])
            finally:
                client.close()

        self._cleanups.append(cleanup)
        separator = "&" if "?" in REDIS_URL else "?"
        url = f"{REDIS_URL}{separator}prefix={self.prefix}"
        return Server("coatcheck redis", Role.COATCHECK, url, redis_total)

    def _postgres(self) -> Server:
        import psycopg
        from psycopg import sql

        from coatcheck.stores.postgres import VERSION_TABLE

        try:
            with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
                version = conn.execute("SHOW server_version").fetchone()
        except psycopg.Error as exc:
            raise BenchError(
                f"scenario load needs a PostgreSQL server at {POSTGRES_URL} (set "
                f"BENCH_POSTGRES_URL, or leave postgres out of BENCH_LOAD_STORES): {exc}"
            ) from exc
        self.notes.append(
            f"postgres: server {version[0] if version else '?'} at {POSTGRES_URL}, "
            "pool of 1-10 connections (PostgresStore's default)"
        )
        table = sql.Identifier(self.table)

        def postgres_total() -> int:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                row = conn.execute(
                    sql.SQL("SELECT coalesce(sum((data->>'n')::int), 0) FROM {}").format(table)
                ).fetchone()
            return int(row[0]) if row else 0

        def cleanup() -> None:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
                exists = conn.execute("SELECT to_regclass(%s)", (VERSION_TABLE,)).fetchone()
                if exists and exists[0] is not None:
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE name = %s").format(
                            sql.Identifier(VERSION_TABLE)
                        ),
                        (self.table,),
                    )

        self._cleanups.append(cleanup)
        separator = "&" if "?" in POSTGRES_URL else "?"
        url = f"{POSTGRES_URL}{separator}table={self.table}"
        return Server("coatcheck postgres", Role.COATCHECK, url, postgres_total)

    def cleanup(self) -> None:
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                cleanup()


# -- results -------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(slots=True)
class LoadResult(WorkloadResult):
    """Requests per second per configuration; ``rows`` carry the same data as wall-clock
    µs per request (1e6 / requests per second) for the JSON and the harness."""

    clients: int = 64
    rps: dict[str, list[float]] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)

    def render(self, console: Console) -> None:
        table = Table(
            title=self.title,
            title_justify="left",
            title_style="bold",
            caption="requests per second: median, min, max over rounds; x bare = median ÷ the "
            "bare server's.\nLatency percentiles over every request of the configuration.",
            caption_justify="left",
        )
        table.add_column("configuration", no_wrap=True)
        for heading in ("req/s", "min", "max", "x bare", "p50 ms", "p99 ms", "requests"):
            table.add_column(heading, justify="right")
        bare = statistics.median(self.rps[self.baseline.name])
        for row in self.rows:
            samples = self.rps[row.name]
            median = statistics.median(samples)
            latency = self.latency_ms[row.name]
            style = "bold green" if row.role is Role.COATCHECK else "dim"
            table.add_row(
                row.name,
                f"{median:,.0f}",
                f"{min(samples):,.0f}",
                f"{max(samples):,.0f}",
                f"{median / bare:.2f}x",
                f"{latency['p50']:.1f}",
                f"{latency['p99']:.1f}",
                f"{self.requests[row.name]:,}",
                style=style,
            )
        console.print(table)
        for note in self.notes:
            console.print(f"[dim]note:[/] {note}")
        console.print()

    def to_json(self) -> dict[str, Any]:
        document = WorkloadResult.to_json(self)
        document["clients"] = self.clients
        for row in document["rows"]:
            name = row["name"]
            row["requests_per_second"] = [round(r, 1) for r in self.rps[name]]
            row["median_requests_per_second"] = round(statistics.median(self.rps[name]), 1)
            row["latency_ms"] = {k: round(v, 3) for k, v in self.latency_ms[name].items()}
            row["requests"] = self.requests[name]
        return document


def _result(
    workload: str, servers: list[Server], load: LoadSettings, notes: list[str]
) -> LoadResult:
    label = "read-only (GET /read)" if workload == "read" else "writing (GET /write)"
    result = LoadResult(
        key=f"load.{workload}",
        title=f"uvicorn on loopback, {load.clients} concurrent clients, {label}",
        rows=[],
        notes=list(notes),
        clients=load.clients,
    )
    for server in servers:
        windows = server.windows[workload]
        latencies = [x for w in windows for x in w.latencies]
        result.rows.append(CaseResult(server.name, server.role, [1e6 / w.rps for w in windows]))
        result.rps[server.name] = [w.rps for w in windows]
        result.requests[server.name] = sum(w.requests for w in windows)
        result.latency_ms[server.name] = {
            "p50": _percentile(latencies, 0.50) * 1000,
            "p90": _percentile(latencies, 0.90) * 1000,
            "p99": _percentile(latencies, 0.99) * 1000,
        }
    return result


# -- the scenario --------------------------------------------------------------------------


async def run(settings: Settings, console: Console) -> list[WorkloadResult]:
    load = LoadSettings.from_env()
    with tempfile.TemporaryDirectory(prefix="coatcheck-bench-load-") as directory:
        stores = Stores(Path(directory))
        servers: list[Server] = []
        try:
            servers.append(Server("bare (no sessions)", Role.BASELINE, None))
            servers += [stores.server(store) for store in load.stores]
            for server in servers:
                server.start()
            with console.status("[bold]load[/]: starting servers") as status:
                for server in servers:
                    await server.ready()
                    await server.establish(load.clients)
                for server in servers:
                    status.update(f"[bold]load[/]: warming up {server.name}")
                    await drive(server.browsers, False, load.warmup)
                    await drive(server.browsers, True, load.warmup)
                for round_ in range(load.rounds):
                    shift = round_ % len(servers)
                    for server in servers[shift:] + servers[:shift]:
                        status.update(
                            f"[bold]load[/]: round {round_ + 1}/{load.rounds}, {server.name}"
                        )
                        for workload in ("read", "write"):
                            window = await drive(server.browsers, workload == "write", load.window)
                            server.windows[workload].append(window)
                status.update("[bold]load[/]: checking every session against the store")
                for server in servers:
                    await server.verify()
        except BenchError as exc:
            raise BenchError(f"load: {exc}") from exc
        finally:
            for server in servers:
                server.stop()
            stores.cleanup()
    notes = [
        f"{load.clients} clients, each a keep-alive connection with its own session, one "
        f"request at a time; {load.rounds} rounds of {load.window:g} s per configuration and "
        f"workload, interleaved, after {load.warmup:g} s of warm-up",
        "one uvicorn worker per configuration (bench/apps/load_app.py), same machine as the "
        "client and the store servers",
        *stores.notes,
        "writes are GET /write, so no CSRF token is involved (GET is safe); a real app writes "
        "on POST and also pays coatcheck's CSRF check",
    ]
    return [_result(workload, servers, load, notes) for workload in ("read", "write")]


SCENARIO = Scenario(
    name="load",
    description="uvicorn on loopback, 64 concurrent keep-alive clients: requests per second "
    "with and without coatcheck on memory, SQLite, Redis and PostgreSQL",
    packages=(
        "coatcheck",
        "starlette",
        "uvicorn",
        "h11",
        "httptools",
        "uvloop",
        "redis",
        "psycopg",
        "psycopg-pool",
    ),
    run=run,
)
