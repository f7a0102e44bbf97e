"""PostgreSQL under several nodes and under a server restart, through real app processes.

2. Two uvicorn processes share one PostgreSQL: a login on A, a cart filled on B and a
   logout on B leave A refusing the old token.
4. A private PostgreSQL cluster is stopped and started again while clients write: every
   request in the gap gets 503 (never 500), the app's pool reconnects by itself, and every
   write that was answered 200 is still there.
5. A private PostgreSQL server is frozen (SIGSTOP: sockets open, no replies): a call is
   StoreUnavailable within the configured timeouts, on both paths, and the store serves
   again once it thaws.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from coatcheck.core import tokens
from coatcheck.errors import StoreUnavailable
from coatcheck.stores.postgres import PostgresStore
from tests.support.browser import Browser
from tests.support.postgres_server import (
    admin_connect,
    free_port,
    private_cluster,
    scratch_table,
    store_url,
)

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "__Host-session"


@contextlib.contextmanager
def app_process(url: str, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """uvicorn serving tests/apps/shop_app.py over the store ``url``, on a free port.

    Its output goes to ``log`` (a pipe nobody reads would fill up with the pool's
    reconnection warnings and stall the app).
    """
    port = free_port()
    env = {**os.environ, "COATCHECK_STORE": url, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    command = [sys.executable, "-m", "uvicorn", "tests.apps.shop_app:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"app exited ({proc.returncode}):\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/noop", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"app did not start:\n{log.read_text()}"
            time.sleep(0.05)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_until(what: str, condition: Callable[[], bool], timeout: float) -> float:
    """Poll ``condition``; return how long it took, or fail naming ``what``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.slow
def test_2_two_app_processes_share_one_postgres(tmp_path: Path) -> None:
    with scratch_table() as table:
        url = store_url(table)
        with (
            app_process(url, tmp_path / "a.log") as (a, _),
            app_process(url, tmp_path / "b.log") as (b, _),
            Browser(a) as on_a,
        ):
            assert on_a.post("/login?user=alice").json()["user_id"] == "alice"
            old = on_a.cookies[COOKIE]
            with Browser(b) as on_b:
                on_b.cookies[COOKIE] = old
                r = on_b.post("/cart/add?item=hat")
                assert r.json()["user_id"] == "alice"
                assert on_b.post("/cart/add?item=scarf").json()["data"] == {
                    "cart": ["hat", "scarf"]
                }
                seen_on_a = on_a.get("/read").json()
                assert (seen_on_a["user_id"], seen_on_a["data"]) == (
                    "alice",
                    {"cart": ["hat", "scarf"]},
                )
                assert on_b.post("/logout").status_code == 200
                assert COOKIE not in on_b.cookies
            refused = on_a.get("/read").json()  # A still presents the old token
            assert (refused["is_new"], refused["user_id"], refused["data"]) == (True, None, {})
            assert on_a.get("/sessions").status_code == 401
        admin = admin_connect()
        try:
            keys = admin.execute(
                sql.SQL("SELECT key FROM {}").format(sql.Identifier(table))
            ).fetchall()
        finally:
            admin.close()
        assert (tokens.storage_key(old),) not in keys


class Writer(threading.Thread):
    """A client writing one new key per request to its own session, remembering which
    writes were acknowledged (200) and every status it saw."""

    def __init__(self, base: str, name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.browser = Browser(base)
        self.stop = stop
        self.acked: dict[str, int] = {}
        self.statuses: list[tuple[float, int]] = []
        self.slowest = 0.0
        self.errors: list[str] = []

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            key = f"{self.name}-{i}"
            started = time.monotonic()
            try:
                r = self.browser.post("/set", json={key: i})
            except httpx.HTTPError as exc:  # the app itself must stay up: record it
                self.errors.append(repr(exc))
                continue
            done = time.monotonic()
            self.slowest = max(self.slowest, done - started)
            self.statuses.append((done, r.status_code))
            if r.status_code == 200:
                self.acked[key] = i

    def count(self, status: int, since: float = 0.0) -> int:
        return sum(1 for t, s in list(self.statuses) if s == status and t >= since)


@pytest.mark.slow
def test_4_postgres_restart_during_traffic(tmp_path: Path) -> None:
    with private_cluster() as cluster:
        url = f"{cluster.url}?pool_timeout=1&connect_timeout=2&statement_timeout=2"
        with app_process(url, tmp_path / "app.log") as (base, proc):
            stop = threading.Event()
            writers = [Writer(base, f"w{n}", stop) for n in range(4)]
            for w in writers:
                w.start()
            try:
                wait_until("steady traffic", lambda: all(w.count(200) >= 10 for w in writers), 20)
                # About 3 s down (each 503 waits pool_timeout, 1 s): longer than the pool's
                # reconnect_timeout (2 s), so its reconnection attempts give up and fresh
                # ones must start from the traffic itself.
                cluster.stop("fast")
                wait_until(
                    "503s during the gap", lambda: sum(w.count(503) for w in writers) >= 12, 15
                )
                cluster.start()
                up = time.monotonic()
                recovery = wait_until(
                    "traffic to recover",
                    lambda: all(w.count(200, since=up) >= 1 for w in writers),
                    20,
                )
                wait_until(
                    "more traffic", lambda: all(w.count(200, since=up) >= 10 for w in writers), 20
                )
            finally:
                stop.set()
                for w in writers:
                    w.join(15)
            assert proc.poll() is None, "the app process died"
            statuses = Counter(s for w in writers for _, s in w.statuses)
            slowest = max(w.slowest for w in writers)
            print(
                f"\nstatuses {dict(statuses)}; first 200s {recovery:.2f}s after the start; "
                f"slowest request {slowest:.2f}s"
            )
            assert set(statuses) == {200, 503}, statuses
            assert [e for w in writers for e in w.errors] == []
            assert slowest < 3  # pool_timeout is 1 s: a request in the gap never hangs

            # A restart while the app is idle leaves every pooled connection dead; the
            # checkout notices without a round trip, so not even one request fails.
            cluster.restart()
            for n in range(3):
                for w in writers:
                    key = f"{w.name}-after-restart-{n}"
                    assert w.browser.post("/set", json={key: n}).status_code == 200
                    w.acked[key] = n
            for w in writers:
                data = w.browser.get("/read").json()["data"]
                lost = {k: v for k, v in w.acked.items() if data.get(k) != v}
                assert lost == {}, f"{w.name} lost acknowledged writes: {sorted(lost)}"
                w.browser.close()
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            (rows,) = conn.execute("SELECT count(*) FROM coatcheck_sessions").fetchone() or (0,)
        assert rows == len(writers)


# -- 5. a frozen server: the socket open, no replies ------------------------------------------
def _server_pids(cluster: Any) -> list[int]:
    """The postmaster and every process it started (the backends holding our sockets)."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(stat.parent.name))
    return pids


@contextlib.contextmanager
def frozen(cluster: Any) -> Iterator[None]:
    """SIGSTOP the whole server: its kernel still accepts and acknowledges everything
    (so TCP keepalives and tcp_user_timeout see a healthy peer) but nothing answers."""
    pids = _server_pids(cluster)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


TIMEOUT = 1.0
"""connect_timeout, statement_timeout and pool_timeout of the frozen-server tests."""
BOUND = 3 * (TIMEOUT + 2)
"""A correctness bound, not a measurement: a call that has not ended by then is hung.
(The client's own reply bound is the statement timeout plus 2 s.)"""


def _frozen_store(cluster: Any) -> PostgresStore:
    return PostgresStore(
        cluster.url,
        connect_timeout=TIMEOUT,
        statement_timeout=TIMEOUT,
        pool_timeout=TIMEOUT,
        min_size=1,
        max_size=2,
    )


def test_5_a_frozen_postgres_is_store_unavailable_not_a_hang_sync() -> None:
    """The server stops answering on open sockets: a call returns StoreUnavailable (the
    edges' 503) and the request completes; once the server thaws the store serves
    again by itself."""
    with private_cluster() as cluster:
        store = _frozen_store(cluster)
        key = tokens.storage_key(tokens.new_token())
        assert store.get_sync(key) is None  # migrated, a pooled connection in hand
        outcome: list[object] = []

        def call() -> None:
            try:
                outcome.append(store.get_sync(key))
            except StoreUnavailable as exc:
                outcome.append(exc)

        with frozen(cluster):
            started = time.monotonic()
            worker = threading.Thread(target=call, daemon=True)
            worker.start()
            worker.join(BOUND)
            elapsed = time.monotonic() - started
            assert not worker.is_alive(), f"still waiting after {elapsed:.1f} s"
        (result,) = outcome
        assert isinstance(result, StoreUnavailable), result
        assert store.get_sync(key) is None  # thawed: served again, no restart
        store.close_sync()


async def test_5_a_frozen_postgres_is_store_unavailable_not_a_hang_async() -> None:
    with private_cluster() as cluster:
        store = _frozen_store(cluster)
        key = tokens.storage_key(tokens.new_token())
        assert await store.get(key) is None
        with frozen(cluster), pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.get(key), BOUND)  # (TimeoutError: a hang)
        assert await store.get(key) is None
        await store.close()
