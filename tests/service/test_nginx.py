"""A real nginx with ``auth_request``, running ``docs/gateways/nginx.conf``, in front of a
small app, asking a real ``coatcheck serve``: what a browser and the app see."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import Running, start_running
from tests.service.gateway import Nginx, Upstream
from tests.service.server import ServiceProcess
from tests.support.redis_servers import RedisServer

COOKIE = "__Host-session"


@dataclass
class Gateway:
    service: Running
    nginx: Nginx
    app: Upstream

    def login(self, user_id: str) -> tuple[str, str]:
        """A signed-in session made through the API: (token, handle)."""
        made = httpx.post(
            f"{self.service.url}/v1/sessions",
            json={"user_id": user_id},
            headers={"authorization": f"Bearer {self.service.admin_key}"},
        ).json()
        return made["token"], made["session"]["handle"]

    def get(self, path: str, token: str | None = None, **headers: str) -> httpx.Response:
        if token is not None:
            headers["cookie"] = f"{COOKIE}={token}"
        return httpx.get(f"{self.nginx.url}{path}", headers=headers, timeout=10)


def gateway(directory: Path, **env: str) -> Iterator[Gateway]:
    service = start_running(directory / "coatcheck", env)
    try:
        with (
            Upstream() as app,
            Nginx(directory / "nginx", [service.server.port], app.port) as nginx,
        ):
            yield Gateway(service, nginx, app)
    finally:
        service.server.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from gateway(tmp_path_factory.mktemp("gw"), COATCHECK_TOUCH_INTERVAL="0")


def test_no_session_is_401_and_the_app_never_sees_the_request(gw: Gateway) -> None:
    before = len(gw.app.seen)
    for headers in ({}, {"x-coatcheck-user": "admin"}, {"cookie": f"{COOKIE}={'A' * 43}"}):
        assert gw.get("/orders", **headers).status_code == 401
    assert gw.get("/poll/inbox").status_code == 401
    assert len(gw.app.seen) == before


def test_with_a_session_the_user_header_reaches_the_app(gw: Gateway) -> None:
    token, handle = gw.login("tara")
    forged = {"x-coatcheck-user": "mallory", "x-coatcheck-jwt": "forged", "x-coatcheck-level": "9"}
    answer = gw.get("/orders?page=2", token, **forged)
    assert answer.status_code == 200
    seen = gw.app.seen[-1]
    assert seen["path"] == "/orders?page=2"
    assert seen["x-coatcheck-user"] == "tara"  # the client's own header was replaced
    assert seen["x-coatcheck-session"] == handle
    assert seen["x-coatcheck-level"] == "1"
    assert "x-coatcheck-jwt" not in seen  # none configured, and the client's is dropped
    assert "set-cookie" not in answer.headers  # nothing rotated, nothing to deliver


def test_a_logout_through_the_api_denies_the_very_next_request(gw: Gateway) -> None:
    token, _ = gw.login("uma")
    assert gw.get("/orders", token).status_code == 200
    logout = httpx.post(
        f"{gw.service.url}/v1/sessions/logout",
        json={"token": token},
        headers={"authorization": f"Bearer {gw.service.admin_key}"},
    )
    assert logout.status_code == 204
    assert gw.get("/orders", token).status_code == 401


def last_seen(service: Running, token: str) -> float:
    key = hashlib.sha256(token.encode()).hexdigest()
    with sqlite3.connect(service.db) as conn:
        (value,) = conn.execute(
            "SELECT last_seen_at FROM coatcheck_sessions WHERE key = ?", (key,)
        ).fetchone()
    return float(value)


def test_polling_routes_are_checked_but_do_not_slide(gw: Gateway) -> None:
    token, _ = gw.login("vic")
    before = last_seen(gw.service, token)
    for _ in range(3):
        assert gw.get("/poll/inbox", token).status_code == 200
        assert gw.app.seen[-1]["x-coatcheck-user"] == "vic"
    assert last_seen(gw.service, token) == before
    assert gw.get("/orders", token).status_code == 200
    assert last_seen(gw.service, token) > before


def test_a_rotated_cookie_reaches_the_browser(tmp_path: Path) -> None:
    for gate in gateway(tmp_path, COATCHECK_ROTATION_INTERVAL="0.000001"):
        token, handle = gate.login("wes")
        first = gate.get("/orders", token)
        assert first.status_code == 200
        name, _, rest = first.headers["set-cookie"].partition("=")
        new_token = rest.split(";")[0]
        assert name == COOKIE and new_token != token
        assert "HttpOnly" in rest and "Secure" in rest and "SameSite=Lax" in rest
        second = gate.get("/orders", new_token)
        assert second.status_code == 200
        assert gate.app.seen[-1]["x-coatcheck-session"] == handle  # the same session


def test_two_nodes_on_one_redis_round_robin_lose_nothing(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis").start() as redis_server:
        first = ServiceProcess(tmp_path / "a", redis_server.url).start()
        key = first.printed_key()
        assert key is not None
        second = ServiceProcess(tmp_path / "b", redis_server.url).start()
        assert second.printed_key() is None  # the key is in Redis already
        nodes = [first, second]
        try:
            with (
                Upstream() as app,
                Nginx(tmp_path / "nginx", [n.port for n in nodes], app.port) as nginx,
            ):
                made = httpx.post(
                    f"{first.url}/v1/sessions",
                    json={"user_id": "xena"},
                    headers={"authorization": f"Bearer {key}"},
                ).json()
                token = made["token"]
                with second.client(key) as client:  # made on one, known to the other
                    seen = client.post("/v1/sessions/introspect", json={"token": token}).json()
                assert seen["active"] and seen["session"]["user_id"] == "xena"
                cookie = {"cookie": f"{COOKIE}={token}"}
                for _ in range(6):
                    assert httpx.get(f"{nginx.url}/a", headers=cookie).status_code == 200
                served = [forward_auth_count(n) for n in nodes]
                assert all(count >= 1 for count in served), served  # both nodes answered
                first.kill()
                for _ in range(6):  # nginx moves on to the living node; the session lives on
                    answer = httpx.get(f"{nginx.url}/b", headers=cookie)
                    assert answer.status_code == 200
                    assert app.seen[-1]["x-coatcheck-user"] == "xena"
        finally:
            for node in nodes:
                node.stop()


def forward_auth_count(node: ServiceProcess) -> float:
    text = httpx.get(f"{node.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "coatcheck_request_duration_seconds_count"
                and sample.labels.get("operation") == "forward_auth"
            ):
                return sample.value
    return 0.0
