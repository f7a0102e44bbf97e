"""``coatcheck serve`` as an operator runs it: the routes around the API, the first admin
key, options from flags or ``COATCHECK_*``, readiness against a store that dies, metrics
fed by the engine's events, several workers, and ``make run``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import Running
from tests.service.server import TEST_ENV, ServiceProcess, coatcheck, free_port
from tests.support.redis_servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_routes_around_the_api(running: Running) -> None:
    with httpx.Client(base_url=running.url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        document = client.get("/openapi.json").json()
        docs = client.get("/docs")
        shop = client.get("/")
        start = client.get("/start")
        metrics = client.get("/metrics")
    assert set(document["paths"]) == {
        "/v1/sessions",
        "/v1/sessions/introspect",
        "/v1/sessions/update",
        "/v1/sessions/login",
        "/v1/sessions/consent",
        "/v1/sessions/regenerate",
        "/v1/sessions/logout",
        "/v1/sessions/token",
        "/v1/users/{user_id}/sessions",
        "/v1/users/{user_id}/export",
        "/v1/users/{user_id}",
        "/v1/sessions/{handle}",
        "/v1/forward-auth",
        "/v1/analytics/summary",
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/jwks.json",
        "/.well-known/gpc.json",
    }
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert shop.status_code == 200 and "coatcheck demo shop" in shop.text
    assert "set-cookie" not in shop.headers  # a plain visit writes nothing
    assert start.headers["set-cookie"].startswith("__Host-session=")
    assert metrics.headers["content-type"].startswith("text/plain")


def test_first_start_prints_one_admin_key_and_later_starts_none(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with ServiceProcess(tmp_path, f"sqlite:///{db}") as first:
        key = first.printed_key()
        assert key is not None and len(key) == 46
        with first.client(key) as client:
            assert client.get("/v1/users/u1/sessions").json() == {"sessions": []}
    with ServiceProcess(tmp_path, f"sqlite:///{db}") as second:
        assert second.printed_key() is None
        assert "shown only this once" not in second.output()
        with second.client(key) as client:  # the key lives in the store, not the process
            assert client.get("/v1/users/u1/sessions").status_code == 200
    listed = coatcheck("api-keys", "list", "--store", f"sqlite:///{db}")
    assert "admin" in listed and key not in listed


def test_every_option_also_comes_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "env.db"
    env = {
        **os.environ,
        **TEST_ENV,
        "COATCHECK_HOST": "127.0.0.1",
        "COATCHECK_PORT": str(port),
        "COATCHECK_WORKERS": "1",
        "COATCHECK_STORE": f"sqlite:///{db}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "coatcheck.cli", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        answer = None
        deadline = time.monotonic() + 30
        while answer is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except httpx.TransportError:
                time.sleep(0.05)  # waiting for the process to start
        assert answer is not None and answer.status_code == 200
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
    assert db.exists()  # COATCHECK_STORE chose the store
    assert f"http://127.0.0.1:{port}/v1" in output


def serve_fails(tmp_path: Path, *args: str, **env: str) -> str:
    """Run ``coatcheck serve ARGS``, which must fail at once; its one line of stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "coatcheck.cli", "serve", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr.strip()


def test_operator_mistakes_give_one_line(tmp_path: Path) -> None:
    keys = "k1:" + "A" * 43
    cookie = serve_fails(tmp_path, "--store", "cookie://", COATCHECK_COOKIE_KEYS=keys)
    assert cookie.startswith("Error: the service needs a server-side store")
    ttl = serve_fails(tmp_path, "--store", "memory://", COATCHECK_JWT_TTL="100000")
    assert ttl == "Error: COATCHECK_JWT_TTL must be between 1 and 900"


def test_readyz_and_every_call_answer_503_while_the_store_is_down(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        server = ServiceProcess(tmp_path, redis_server.url).start()
        try:
            key = server.printed_key()
            assert key is not None
            with server.client(key) as client:
                assert client.get("/readyz").status_code == 200
                redis_server.kill()
                ready = client.get("/readyz")
                call = client.post("/v1/sessions", json={"user_id": "u"})
                health = client.get("/healthz")
        finally:
            server.stop()
    finally:
        redis_server.stop()
    assert health.status_code == 200  # the process itself is up
    for answer in (ready, call):
        assert answer.status_code == 503
        assert answer.headers["content-type"] == PROBLEM
        assert answer.headers["retry-after"] == "5"
        assert answer.json()["type"] == "urn:coatcheck:problem:store-unavailable"
    assert "Traceback" not in server.output()


def test_readyz_is_503_when_the_store_hangs_past_the_deadline(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
    server = ServiceProcess(tmp_path, redis_server.url, env={"COATCHECK_READY_TIMEOUT": "0.5"})
    try:
        server.start()
        with server.client() as client:
            assert client.get("/readyz").status_code == 200
            redis_server.kill(signal.SIGSTOP)  # the store hangs: no answer, no error
            start = time.monotonic()
            answer = client.get("/readyz")
            took = time.monotonic() - start
    finally:
        server.stop()
        redis_server.stop()
    assert answer.status_code == 503
    assert answer.json()["type"] == "urn:coatcheck:problem:store-unavailable"
    assert 0.5 <= took < 3.0


def test_metrics_follow_the_engine_events(fresh: Callable[..., Running]) -> None:
    service = fresh(COATCHECK_ROTATION_INTERVAL="0.000001", COATCHECK_ROTATION_GRACE="0.000001")
    with httpx.Client(
        base_url=service.url, headers={"authorization": f"Bearer {service.admin_key}"}
    ) as c:
        alice = c.post("/v1/sessions", json={"user_id": "alice"}).json()["token"]
        bob = c.post("/v1/sessions", json={"user_id": "bob"}).json()["token"]
        c.post("/v1/sessions", json={"data": {"cart": ["coat"]}})
        assert c.post("/v1/sessions/logout", json={"token": bob}).status_code == 204
        unknown = "A" * 43
        assert c.post("/v1/sessions/introspect", json={"token": unknown}).json() == {
            "active": False
        }
        rotated = c.post("/v1/sessions/introspect", json={"token": alice}).json()
        assert rotated["active"] and rotated["token"] != alice
        # The rotated-out token, presented after its grace time: theft, the session ends.
        again = c.post("/v1/sessions/introspect", json={"token": alice}).json()
        assert again == {"active": False}
        text = c.get("/metrics").text
    found = samples(text)
    assert found[("coatcheck_sessions_created_total", ())] == 3
    assert found[("coatcheck_sessions_ended_total", (("reason", "logout"),))] == 1
    assert found[("coatcheck_sessions_ended_total", (("reason", "theft_suspected"),))] == 1
    assert found[("coatcheck_sessions_theft_suspected_total", ())] == 1
    assert found[("coatcheck_sessions_rejected_total", (("reason", "unknown"),))] == 1
    # alice ended (theft), bob logged out: the anonymous cart is the one live session.
    assert found[("coatcheck_sessions_active", ())] == 1
    introspections = (
        "coatcheck_request_duration_seconds_count",
        (("operation", "sessions.introspect"),),
    )
    assert found[introspections] == 3
    assert found[("coatcheck_store_duration_seconds_count", (("operation", "create"),))] >= 3
    assert found[("coatcheck_store_duration_seconds_count", (("operation", "get"),))] >= 3


def test_metrics_of_several_workers_add_up(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    with ServiceProcess(tmp_path, f"sqlite:///{db}", args=("--workers", "2")) as server:
        key = server.printed_key()
        assert key is not None
        with server.client(key) as client:
            for n in range(6):
                # A connection per request, so both workers take some.
                client.post(
                    "/v1/sessions", json={"user_id": f"u{n}"}, headers={"connection": "close"}
                )
            scrapes = [
                samples(client.get("/metrics", headers={"connection": "close"}).text)
                for _ in range(4)
            ]
    for found in scrapes:
        assert found[("coatcheck_sessions_created_total", ())] == 6


def test_make_run_installs_the_serve_extra_and_starts_serve(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # Run as a top-level make even under `make test`: a sub-make prints its directory.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    proc = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", f"VENV={venv}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = proc.stdout.splitlines()
    installs = [line for line in lines if "pip install" in line and "-e" in line]
    assert installs == [f'{venv}/bin/python -m pip install --quiet -e ".[serve]"']
    assert (
        lines[-1]
        == f'{venv}/bin/coatcheck serve --store "${{COATCHECK_STORE:-sqlite:///coatcheck.db}}"'
    )


BLOCKED = (
    "pytest",
    "httpx",
    "hypothesis",
    "schemathesis",
    "redis",
    "psycopg",
    "pymemcache",
    "flask",
    "django",
    "litestar",
    "playwright",
)
BLOCKER = f"""
import sys
from importlib.abc import MetaPathFinder

class Blocked(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"blocked: {{name}}", name=name)
        return None

sys.meta_path.insert(0, Blocked())
from coatcheck.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_sqlite_needs_nothing_beyond_the_serve_extra(tmp_path: Path, workers: str) -> None:
    """The packages of the test and the other stores are unimportable, and it serves."""
    port = free_port()
    env = {**os.environ, **TEST_ENV, "COATCHECK_STORE": f"sqlite:///{tmp_path / 'x.db'}"}
    args = ["serve", "--port", str(port), "--workers", workers]
    proc = subprocess.Popen(
        [sys.executable, "-c", BLOCKER, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        created = None
        deadline = time.monotonic() + 30
        while created is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except httpx.TransportError:
                time.sleep(0.05)  # waiting for the process to start
                continue
            created = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert created is not None and created.status_code == 200
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
    assert "Traceback" not in output
    assert "blocked" not in output
