"""``examples/express``: the Express app and the Python demo share one login through the
session service. Real processes on loopback: ``coatcheck serve`` (the demo at ``/``), the
example's ``node app.js``, and nginx running ``examples/express/nginx.conf`` as shipped
(only its ports replaced) so both apps are one origin, and one cookie jar, as a browser
has: log in on one and the other knows the user; log out on either and both forget.

Both apps read the cookie's settings from the same ``COATCHECK_*`` variables; the test sets
``COATCHECK_SECURE=false`` and a name without ``__Host-`` because it speaks plain HTTP
(a browser keeps a Secure cookie only over HTTPS or on localhost).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Running, start_running
from tests.service.gateway import Nginx
from tests.service.server import free_port
from tests.service.test_express_client import need, npm_ci

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "express"
COOKIE = "session"
COOKIE_ENV = {"COATCHECK_SECURE": "false", "COATCHECK_COOKIE_NAME": COOKIE}
TOKEN = re.compile(r'name="?csrf_token"? value="([A-Za-z0-9_-]{86})"')


def shipped_config(service: int, app: int) -> str:
    """The example's nginx.conf with the test's ports (nginx's own filled in by ``Nginx``);
    each replaced line must exist."""
    text = (EXAMPLE / "nginx.conf").read_text()
    for old, new in (
        ("    listen 8080;\n", "    listen 127.0.0.1:@LISTEN@;\n"),
        ("    server 127.0.0.1:8000;\n", f"    server 127.0.0.1:{service};\n"),
        ("    server 127.0.0.1:3000;\n", f"    server 127.0.0.1:{app};\n"),
    ):
        assert text.count(old) == 1, f"examples/express/nginx.conf lost its line {old!r}"
        text = text.replace(old, new)
    return text


@dataclass
class Site:
    """The one origin the browser sees, and the service behind it."""

    service: Running
    url: str
    browser: httpx.Client

    def token(self, path: str) -> str:
        page = self.browser.get(path)
        assert page.status_code == 200, page.text
        found = TOKEN.search(page.text)
        assert found is not None, page.text
        return found.group(1)

    def post(self, path: str, form: dict[str, str], token_from: str) -> httpx.Response:
        """A form post as a browser sends it: its Origin, and the page's CSRF token."""
        data = {**form, "csrf_token": self.token(token_from)}
        return self.browser.post(path, data=data, headers={"origin": self.url})

    def express_user(self) -> str | None:
        answer = self.browser.get("/express/whoami")
        assert answer.status_code == 200, answer.text
        user: str | None = answer.json()["user"]
        return user

    def demo_user(self) -> str | None:
        found = re.search(r"[Ss]igned in as <b>([^<]+)</b>", self.browser.get("/").text)
        return found.group(1) if found else None

    def cookie(self) -> str | None:
        return self.browser.cookies.get(COOKIE)


class ExampleApp:
    """``node app.js`` from examples/express, on a port of its own."""

    def __init__(self, directory: Path, service: Running) -> None:
        self.port = free_port()
        self.log = directory / "express.log"
        key = service.key("express-example", "sessions")
        self.env = {
            **os.environ,
            **COOKIE_ENV,
            "PORT": str(self.port),
            "COATCHECK_URL": service.url,
            "COATCHECK_API_KEY": key,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ExampleApp:
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [need("node"), "app.js"], cwd=EXAMPLE, env=self.env, stdout=out, stderr=out
            )
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"the example exited:\n{self.log.read_text()}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/express/whoami", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)  # waiting for node to listen
        raise RuntimeError(f"the example did not listen:\n{self.log.read_text()}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    need("node")
    npm_ci(EXAMPLE)
    service = start_running(tmp_path / "service", COOKIE_ENV)
    try:
        with ExampleApp(tmp_path, service) as app:
            config = shipped_config(service.server.port, app.port)
            nginx = Nginx(tmp_path / "nginx", [], 0, config=config)
            with nginx, httpx.Client(base_url=nginx.url, timeout=10) as browser:
                yield Site(service, nginx.url, browser)
    finally:
        service.server.stop()


def introspect(site: Site, token: str) -> dict[str, object]:
    answer = httpx.post(
        f"{site.service.url}/v1/sessions/introspect",
        json={"token": token, "touch": False},
        headers={"authorization": f"Bearer {site.service.admin_key}"},
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_a_login_on_the_demo_is_known_to_express_and_a_logout_there_ends_both(site: Site) -> None:
    assert (site.demo_user(), site.express_user()) == (None, None)
    site.browser.get("/start")  # the demo's forms need a session: a plain visit stores none
    login = site.post("/login", {"username": "alice", "password": "alice"}, token_from="/")
    assert login.status_code == 303, login.text
    assert site.demo_user() == "alice"
    assert site.express_user() == "alice"  # one cookie, one session
    site.post("/cart/add", {"item": "coat"}, token_from="/")
    assert site.browser.get("/express/whoami").json()["cart"] == ["coat"]
    token = site.cookie()
    assert token is not None

    logout = site.post("/express/logout", {}, token_from="/express/")
    assert logout.status_code == 303, logout.text
    assert site.cookie() is None
    assert (site.express_user(), site.demo_user()) == (None, None)
    assert introspect(site, token) == {"active": False}  # the service forgot it too


def test_a_login_on_express_is_known_to_the_demo_and_a_logout_there_ends_both(site: Site) -> None:
    wrong = site.post("/express/login", {"username": "bob", "password": "x"}, "/express/")
    assert wrong.status_code == 401
    login = site.post("/express/login", {"username": "bob", "password": "bob"}, "/express/")
    assert login.status_code == 303, login.text
    assert site.express_user() == "bob"
    assert site.demo_user() == "bob"
    token = site.cookie()
    assert token is not None

    logout = site.post("/logout", {}, token_from="/")
    assert logout.status_code == 303, logout.text
    assert (site.demo_user(), site.express_user()) == (None, None)
    assert introspect(site, token) == {"active": False}


def test_a_post_from_another_origin_is_refused_by_both(site: Site) -> None:
    site.post("/express/login", {"username": "alice", "password": "alice"}, "/express/")
    for path, page in (("/express/logout", "/express/"), ("/logout", "/")):
        data = {"csrf_token": site.token(page)}
        refused = site.browser.post(path, data=data, headers={"origin": "http://evil.example"})
        assert refused.status_code == 403, path
    assert (site.demo_user(), site.express_user()) == ("alice", "alice")


def test_the_api_is_not_reachable_through_the_public_origin(site: Site) -> None:
    assert site.browser.post("/v1/sessions", json={}).status_code == 404
    assert site.browser.get("/metrics").status_code == 404
