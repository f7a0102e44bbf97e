"""The Distributed-stores issue's proofs 2 and 3 for Redis, against real processes.

2. Several nodes: two uvicorn app processes share one Redis; a session logged in on one is
   filled and logged out on the other, and the first then refuses the old token.
3. Redis killed with SIGKILL during steady traffic and restarted with its append-only file
   (``appendfsync always``): 503 and never 500 meanwhile, every acknowledged write is there
   afterwards, and traffic recovers without restarting the app.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from coatcheck import SessionConfig, SessionManager
from coatcheck.stores.redis import RedisStore
from tests.support.browser import Browser
from tests.support.redis_servers import (
    RedisServer,
    delete_prefix,
    free_port,
    shared_redis_url,
    unique_prefix,
)
from tests.support.server import serve
from tests.support.shop import create_shop

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "__Host-session"


@contextlib.contextmanager
def app_processes(store_url: str, count: int) -> Iterator[list[str]]:
    """``count`` uvicorn processes serving tests/apps/shop_app.py over ``store_url``."""
    env = {
        **os.environ,
        "COATCHECK_STORE": store_url,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
    }
    procs: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        for _ in range(count):
            port = free_port()
            command = [sys.executable, "-m", "uvicorn", "tests.apps.shop_app:app"]
            command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
            proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            procs.append((proc, f"http://127.0.0.1:{port}"))
        for proc, url in procs:
            _wait_http(proc, url)
        yield [url for _, url in procs]
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _wait_http(proc: subprocess.Popen[bytes], url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AssertionError(f"app process exited ({proc.returncode}):\n{stderr}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/noop", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"app at {url} did not answer within {timeout}s")
        time.sleep(0.05)


@pytest.mark.slow
def test_2_two_app_processes_share_one_redis() -> None:
    base = shared_redis_url()
    prefix = unique_prefix()
    try:
        with (
            app_processes(f"{base}?prefix={prefix}", 2) as (url_a, url_b),
            Browser(url_a) as on_a,
            Browser(url_b) as on_b,
        ):
            assert on_a.post("/login", params={"user": "alice"}).status_code == 200
            token = on_a.cookies[COOKIE]

            on_b.cookies = dict(on_a.cookies)  # the same browser, routed to the other node
            assert on_b.post("/cart/add", params={"item": "hat"}).status_code == 200
            assert on_b.post("/cart/add", params={"item": "scarf"}).status_code == 200
            seen_on_a = on_a.get("/read").json()
            assert seen_on_a["user_id"] == "alice"
            assert seen_on_a["data"] == {"cart": ["hat", "scarf"]}

            logout = on_b.post("/logout")
            assert logout.status_code == 200 and COOKIE not in on_b.cookies

            refused = on_a.get("/read")  # A still presents the old token
            assert refused.status_code == 200
            view = refused.json()
            assert (view["user_id"], view["data"], view["is_new"]) == (None, {}, True)
            client = redis.Redis.from_url(base, decode_responses=True)
            digest = hashlib.sha256(token.encode()).hexdigest()
            assert client.exists(f"{prefix}s:{digest}") == 0
            assert client.zcard(f"{prefix}u:alice") == 0
            client.close()
    finally:
        delete_prefix(base, prefix)


@pytest.mark.slow
def test_3_sigkill_during_traffic_then_restart_with_aof(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    store = RedisStore.from_url(f"{server.url}?timeout=0.5&connect_timeout=0.5")
    manager = SessionManager(store, SessionConfig())
    statuses: Counter[int] = Counter()
    acknowledged: defaultdict[str, set[str]] = defaultdict(set)
    acks_since: Counter[str] = Counter()  # per worker, reset at the restart
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(name: str, url: str) -> None:
        with Browser(url) as browser:
            n = 0
            while not stop.is_set():
                n += 1
                key = f"{name}-{n}"
                try:
                    response = browser.post("/set", json={key: n})
                except httpx.HTTPError as exc:  # the app itself must never go away
                    failures.append(f"{name}: {exc!r}")
                    return
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        acknowledged[browser.cookies[COOKIE]].add(key)
                        acks_since[name] += 1
                    elif response.status_code != 503:
                        failures.append(f"{name}: {response.status_code} {response.text[:200]}")

    def wait_for(condition: str, check: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():  # type: ignore[operator]
            assert not failures, failures
            assert time.monotonic() < deadline, f"timed out waiting for {condition}"
            time.sleep(0.02)

    names = [f"w{i}" for i in range(6)]
    try:
        with serve(create_shop(manager)) as url:
            threads = [threading.Thread(target=worker, args=(n, url)) for n in names]
            for thread in threads:
                thread.start()
            try:
                wait_for("steady traffic", lambda: all(acks_since[n] >= 5 for n in names), 10)
                server.kill(signal.SIGKILL)
                with lock:
                    before_outage = statuses[503]
                time.sleep(0.5)  # the outage, under traffic
                with lock:
                    assert statuses[503] > before_outage  # requests kept being answered: 503
                    acks_since.clear()
                server.start()  # same port; replays the append-only file
                wait_for("recovery", lambda: all(acks_since[n] >= 3 for n in names), 15)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=10)
            assert not failures, failures
            assert set(statuses) <= {200, 503}, statuses

            # Every session whose write was answered 200 holds every such write.
            with Browser(url) as reader:
                for token, keys in acknowledged.items():
                    reader.cookies = {COOKIE: token}
                    response = reader.get("/read")
                    assert response.status_code == 200
                    data = response.json()["data"]
                    assert keys <= set(data), sorted(keys - set(data))[:5]
    finally:
        store.close_sync()
        server.stop()
    assert statuses[200] > 50 and statuses[503] > 0, statuses
