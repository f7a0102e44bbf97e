"""coatcheck behind a real nginx (docs/nginx.conf, TLS on loopback) in front of uvicorn.

Clients connect from distinct loopback addresses (127.0.0.2, .3, .4), so nginx sees each
one's own address while the app sees every request coming from nginx (127.0.0.1), as in
production. Three ways to run the app, the README's "Behind a reverse proxy":

- ``trusted_proxies``: ``SessionConfig(trusted_proxies=["127.0.0.1"])``, uvicorn told not
  to read forwarded headers (``--no-proxy-headers``): coatcheck alone believes nginx.
- ``none``: neither coatcheck nor uvicorn reads them: every client is nginx's address.
- ``uvicorn``: uvicorn's defaults (``--proxy-headers``, ``--forwarded-allow-ips`` of
  127.0.0.1) rewrite the peer and scheme before coatcheck sees them; coatcheck needs no
  setting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.stores import MemoryStore
from tests.support.browser import Browser, parse_set_cookie
from tests.support.edges import starlette_app
from tests.support.nginx import SITE, Front, nginx_in_front
from tests.support.readme import code_blocks, section
from tests.support.server import serve

COOKIE = "__Host-session"
MODES = ("trusted_proxies", "none", "uvicorn")


@dataclass
class Proxied:
    front: Front
    manager: SessionManager

    def client(self, address: str) -> Browser:
        """A browser on ``address``, speaking https to nginx."""
        transport = httpx.HTTPTransport(verify=self.front.tls, local_address=address)
        return Browser(self.front.https, transport=transport)

    def browser_headers(self) -> dict[str, str]:
        """What a browser adds to a same-origin form post of the https site."""
        return {"Origin": self.front.https, "Sec-Fetch-Site": "same-origin"}


@contextlib.contextmanager
def behind_nginx(mode: str, tmp_path: Path, **settings: Any) -> Iterator[Proxied]:
    if mode == "trusted_proxies":
        settings["trusted_proxies"] = ["127.0.0.1"]
    manager = SessionManager(MemoryStore(), SessionConfig(**settings))
    # uvicorn's defaults rewrite the peer for a proxy on 127.0.0.1: the "uvicorn" mode.
    server: dict[str, Any] = {} if mode == "uvicorn" else {"proxy_headers": False}
    with (
        serve(starlette_app(manager), **server) as app_url,
        nginx_in_front(app_url.removeprefix("http://"), tmp_path / "nginx") as front,
    ):
        yield Proxied(front, manager)


@pytest.mark.parametrize("mode", MODES)
def test_a_login_through_nginx_gets_a_secure_cookie(mode: str, tmp_path: Path) -> None:
    """Over https the __Host- Secure cookie is set and sent back; the browser's https
    Origin passes the CSRF check once the app knows the scheme (trusted_proxies, or the
    server's own forwarded headers), and is refused when nothing tells it."""
    with behind_nginx(mode, tmp_path) as proxied, proxied.client("127.0.0.2") as browser:
        rendered = browser.get("/csrf")
        assert rendered.status_code == 200
        ((name, _, attrs),) = [parse_set_cookie(c) for c in rendered.headers.get_list("set-cookie")]
        assert name == COOKIE
        assert {"secure", "httponly"} <= attrs.keys() and attrs["path"] == "/"
        login = browser.post("/login?user=alice", headers=proxied.browser_headers())
        if mode == "none":
            assert login.status_code == 403
            assert login.text == "CSRF check failed: origin mismatch\n"
            return
        assert login.status_code == 200, login.text
        assert browser.get("/read").json()["user"] == "alice"
        plain = httpx.get(f"{proxied.front.http}/read")  # the http port only redirects
        assert plain.status_code == 301
        assert plain.headers["location"].startswith("https://")
        assert "set-cookie" not in plain.headers


@pytest.mark.parametrize("mode", MODES)
def test_forwarded_for_reaches_the_throttle_only_through_trusted_proxies(
    mode: str, tmp_path: Path
) -> None:
    """A prober on 127.0.0.2 sends garbage cookies (and forged X-Forwarded-For headers,
    which nginx appends to and coatcheck reads from the right). Only when the app knows
    who is behind nginx does another visitor's unknown token on 127.0.0.3 stay unrefused;
    a valid token (alice, 127.0.0.4) is never refused either way."""
    with (
        behind_nginx(mode, tmp_path, unknown_token_limit=3) as proxied,
        proxied.client("127.0.0.2") as prober,
        proxied.client("127.0.0.3") as visitor,
        proxied.client("127.0.0.4") as alice,
    ):
        assert alice.post("/login?user=alice").status_code == 200

        def probe(forged: str | None = None) -> int:
            headers = {"Cookie": f"{COOKIE}={tokens.new_token()}"}
            if forged is not None:
                headers["X-Forwarded-For"] = forged
            return prober.client.get("/read", headers=headers).status_code

        assert [probe() for _ in range(3)] == [200, 200, 200]
        assert [probe(), probe("127.0.0.3"), probe("198.51.100.7, 127.0.0.5")] == [429] * 3
        stale = {"Cookie": f"{COOKIE}={tokens.new_token()}"}
        expected = 429 if mode == "none" else 200  # none: everyone is nginx's 127.0.0.1
        assert visitor.client.get("/read", headers=stale).status_code == expected
        assert alice.get("/read").json()["user"] == "alice"


@pytest.mark.parametrize("mode", MODES)
def test_a_websocket_through_nginx_gets_its_session(mode: str, tmp_path: Path) -> None:
    """The handshake passes nginx with the cookie; its https Origin is the app's own only
    when the app knows the scheme, otherwise it is refused (cross-site WebSocket rule)."""
    with behind_nginx(mode, tmp_path) as proxied, proxied.client("127.0.0.2") as browser:
        assert browser.post("/login?user=alice").status_code == 200
        uri = proxied.front.https.replace("https://", "wss://") + "/ws"
        cookie = {"Cookie": f"{COOKIE}={browser.cookies[COOKIE]}"}
        origin = Origin(proxied.front.https)
        if mode == "none":  # refused before the handshake completes (uvicorn: a 403)
            with pytest.raises(InvalidStatus) as refused:
                connect(uri, ssl=proxied.front.tls, origin=origin, additional_headers=cookie)
            assert refused.value.response.status_code == 403
            return
        with connect(uri, ssl=proxied.front.tls, origin=origin, additional_headers=cookie) as ws:
            assert ws.recv(timeout=5) == "alice"


def test_the_readme_shows_the_tested_config() -> None:
    """The README's nginx lines are those of docs/nginx.conf, which the tests above run."""
    (snippet,) = code_blocks("Behind a reverse proxy", "nginx")
    config = [line.strip() for line in SITE.read_text().splitlines()]
    shown = [line.strip() for line in snippet.splitlines() if line.strip() not in ("", "}")]
    assert shown[0] == "location / {"
    missing = [line for line in shown if line not in config]
    assert missing == []
    assert "docs/nginx.conf" in section("Behind a reverse proxy")
