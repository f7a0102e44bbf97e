"""CSRF protection, proven over real HTTP on every edge that applies it.

The same small site runs three ways: a Starlette app under ``coatcheck.asgi`` (uvicorn), a
plain WSGI app under ``coatcheck.wsgi`` and a Flask app under ``coatcheck.flask.init_app``
(both on the standard library's WSGI server). Each answers the same routes, so every
behaviour below is checked once per edge. A property-based test then drives the ASGI and
WSGI middlewares with arbitrary ``Origin``, ``Sec-Fetch-Site``, token values and methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import flask
import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from werkzeug.wrappers import Request as WerkzeugRequest
from werkzeug.wrappers import Response as WerkzeugResponse

from coatcheck import ConfigError, MemorySink, SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.http.forms import MAX_FORM_BODY, form_field
from coatcheck.integrations.asgi import SessionMiddleware as ASGIMiddleware
from coatcheck.integrations.flask import csrf_exempt, current_session, init_app
from coatcheck.integrations.wsgi import SessionMiddleware as WSGIMiddleware
from coatcheck.integrations.wsgi import get_session
from coatcheck.security import csrf
from coatcheck.stores import MemoryStore, SQLiteStore
from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.server import serve
from tests.support.wsgi_server import serve_wsgi

COOKIE = "__Host-session"
HEADER = "X-CSRF-Token"
EDGES = ["asgi", "wsgi", "flask"]
UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]
ALL_METHODS = ["GET", "HEAD", "OPTIONS", *UNSAFE]
EXEMPT = ["/webhooks"]  # by segment: not "/webhooks-extra"


# -- one site, three edges ------------------------------------------------------------------
def _state(session: Any) -> dict[str, Any]:
    return {"data": dict(session), "handle": session.handle, "user": session.user_id}


def asgi_site(manager: SessionManager) -> Any:
    async def token(request: Request) -> Response:
        return PlainTextResponse(request.session.csrf_token())

    async def read(request: Request) -> Response:
        return JSONResponse(_state(request.session))

    async def echo(request: Request) -> Response:
        form: dict[str, str] = {}
        files: dict[str, int] = {}
        parsed: Any = None
        if request.method != "HEAD":
            kind = request.headers.get("content-type", "")
            if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                async with request.form() as fields:
                    for name, value in fields.multi_items():
                        if isinstance(value, UploadFile):
                            files[name] = len(await value.read())
                        else:
                            form[name] = value
            elif kind.startswith("application/json"):
                parsed = await request.json()
        if request.method != "GET" and request.method != "HEAD" and request.method != "OPTIONS":
            request.session["writes"] = request.session.get("writes", 0) + 1
        return JSONResponse(
            {"method": request.method, "form": form, "files": files, "json": parsed}
        )

    async def login(request: Request) -> Response:
        request.session.login(request.query_params["user"])
        return JSONResponse({"user": request.query_params["user"]})

    async def hook(request: Request) -> Response:
        return PlainTextResponse(f"received {len(await request.body())}")

    app = Starlette(
        routes=[
            Route("/csrf", token),
            Route("/read", read),
            Route("/echo", echo, methods=ALL_METHODS),
            Route("/login", login, methods=["POST"]),
            Route("/webhooks/stripe", hook, methods=["POST"]),
            Route("/webhooks-extra", hook, methods=["POST"]),
        ]
    )
    return ASGIMiddleware(app, manager=manager, csrf_exempt=EXEMPT)


def _werkzeug_echo(request: Any, session: Any) -> dict[str, Any]:
    form = {name: value for name, value in request.form.items()}
    files = {name: len(storage.read()) for name, storage in request.files.items()}
    parsed = request.get_json(silent=True) if request.is_json else None
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        session["writes"] = session.get("writes", 0) + 1
    return {"method": request.method, "form": form, "files": files, "json": parsed}


def wsgi_site(manager: SessionManager) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        request = WerkzeugRequest(environ)
        session = get_session(environ)
        path = request.path
        if path == "/csrf":
            response = WerkzeugResponse(session.csrf_token())
        elif path == "/read":
            response = WerkzeugResponse(json.dumps(_state(session)), mimetype="application/json")
        elif path == "/echo":
            body = json.dumps(_werkzeug_echo(request, session))
            response = WerkzeugResponse(body, mimetype="application/json")
        elif path == "/login" and request.method == "POST":
            session.login(request.args["user"])
            response = WerkzeugResponse(json.dumps({"user": request.args["user"]}))
        elif path in ("/webhooks/stripe", "/webhooks-extra") and request.method == "POST":
            response = WerkzeugResponse(f"received {len(request.get_data())}")
        else:
            response = WerkzeugResponse("not found", status=404)
        return response(environ, start_response)

    return WSGIMiddleware(app, manager=manager, csrf_exempt=EXEMPT)


def flask_site(manager: SessionManager) -> Any:
    app = flask.Flask(__name__)
    init_app(app, manager)

    @app.get("/csrf")
    def token() -> str:
        return flask.render_template_string("{{ csrf_token() }}")  # the template function

    @app.get("/read")
    def read() -> Any:
        return flask.jsonify(_state(current_session()))

    @app.route("/echo", methods=ALL_METHODS)
    def echo() -> Any:
        return flask.jsonify(_werkzeug_echo(flask.request, current_session()))

    @app.post("/login")
    def login() -> Any:
        current_session().login(flask.request.args["user"])
        return flask.jsonify(user=flask.request.args["user"])

    @app.post("/webhooks/stripe")
    @csrf_exempt
    def hook() -> str:
        return f"received {len(flask.request.get_data())}"

    @app.post("/webhooks-extra")
    def not_exempt() -> str:
        return f"received {len(flask.request.get_data())}"

    return app


@dataclass
class Site:
    edge: str
    url: str
    manager: SessionManager
    sink: MemorySink

    def browser(self) -> Browser:
        """A browser that sends only the tokens a test gives it."""
        return Browser(self.url, csrf_path=None)


@contextlib.contextmanager
def running(edge: str, tmp_path: Path, config: SessionConfig | None = None) -> Iterator[Site]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(tmp_path / f"{edge}.db")
    sink = MemorySink()
    manager = SessionManager(store, config or SessionConfig(), clock=FakeClock(), events=[sink])
    try:
        if edge == "asgi":
            with serve(asgi_site(manager)) as url:
                yield Site(edge, url, manager, sink)
        else:
            app = wsgi_site(manager) if edge == "wsgi" else flask_site(manager)
            with serve_wsgi(app) as url:
                yield Site(edge, url, manager, sink)
    finally:
        store.close_sync()


@pytest.fixture(params=EDGES)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    with running(request.param, tmp_path) as s:
        yield s


def render(b: Browser) -> str:
    response = b.get("/csrf")
    assert response.status_code == 200, response.text
    return response.text


def refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 403, response.text
    assert response.text == f"CSRF check failed: {reason}\n"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"


def writes(b: Browser) -> int:
    """How many unsafe requests of this browser reached the app."""
    data: dict[str, Any] = b.get("/read").json()["data"]
    return int(data.get("writes", 0))


# -- tokens -----------------------------------------------------------------------------------
def test_tokens_differ_at_every_render_and_all_of_them_verify(site: Site) -> None:
    with site.browser() as b:
        rendered = [render(b) for _ in range(6)]
        assert len(set(rendered)) == 6  # masked afresh: nothing repeats for BREACH to find
        assert all(len(t) == csrf.TOKEN_LENGTH for t in rendered)
        secrets_inside = {csrf.unmask(t) for t in rendered}
        assert len(secrets_inside) == 1  # ...yet every one carries the same secret
        for n, token in enumerate(rendered, start=1):
            response = b.post("/echo", json={"n": n}, headers={HEADER: token})
            assert response.status_code == 200, response.text
            assert response.json()["json"] == {"n": n}
        assert writes(b) == 6
        stored = site.manager.store.get_sync(tokens.storage_key(b.cookies[COOKIE]))
        assert stored is not None
        secret = stored.meta[csrf.SECRET_KEY]  # kept in engine metadata, not in the data
        assert "csrf" not in json.dumps(stored.data)
        assert all(secret not in t for t in rendered)


def test_a_token_of_another_session_is_invalid(site: Site) -> None:
    with site.browser() as alice, site.browser() as mallory:
        render(alice)
        theirs = render(mallory)
        refused(alice.post("/echo", json={}, headers={HEADER: theirs}), "invalid token")
        assert writes(alice) == 0
        assert mallory.post("/echo", json={}, headers={HEADER: theirs}).status_code == 200


@pytest.mark.parametrize(
    "bad", ["", "x", "A" * csrf.TOKEN_LENGTH, "A" * 43, "é" * csrf.TOKEN_LENGTH, "../" * 30]
)
def test_garbage_tokens_are_invalid_or_missing(site: Site, bad: str) -> None:
    with site.browser() as b:
        render(b)
        response = b.post("/echo", data={"csrf_token": bad, "item": "hat"})
        refused(response, "missing token" if bad == "" else "invalid token")
        assert writes(b) == 0


def test_no_session_means_no_valid_token(site: Site) -> None:
    """A login form must be rendered first: that creates the secret its post is checked
    against (so an attacker cannot log a victim into the attacker's account)."""
    with site.browser() as b:
        refused(b.post("/login?user=mallory", data={"x": "1"}), "missing token")
        refused(b.post("/echo", json={"n": 1}), "missing token")
        stray = csrf.mask(b"\x00" * csrf.SECRET_BYTES)
        refused(b.post("/echo", json={"n": 1}, headers={HEADER: stray}), "invalid token")
        assert b.cookies == {}
        assert site.manager.store.count_sync(site.manager.clock()) == 0


# -- where the request came from ----------------------------------------------------------
def cross_site_variants(url: str) -> list[tuple[dict[str, str], str]]:
    return [
        ({"Sec-Fetch-Site": "cross-site"}, "cross-site request"),
        ({"Sec-Fetch-Site": "Cross-Site"}, "cross-site request"),
        ({"Sec-Fetch-Site": "cross-site", "Origin": url}, "cross-site request"),
        ({"Origin": "https://evil.example"}, "origin mismatch"),
        ({"Origin": "null"}, "origin mismatch"),
        ({"Origin": url.replace("127.0.0.1", "localhost")}, "origin mismatch"),
        ({"Origin": url.replace("http://", "https://")}, "origin mismatch"),
        ({"Origin": url + "/path"}, "origin mismatch"),
        ({"Origin": f"{url}, {url}"}, "origin mismatch"),
        (
            {"Origin": url, "Sec-Fetch-Site": "same-origin", "Host": "evil.example"},
            "origin mismatch",
        ),
    ]


def test_cross_site_requests_are_refused_before_the_token(site: Site) -> None:
    with site.browser() as b:
        token = render(b)
        for method in UNSAFE:
            for headers, reason in cross_site_variants(site.url):
                response = b.request(method, "/echo", json={}, headers={**headers, HEADER: token})
                refused(response, reason)
        # The form field token does not help either.
        response = b.post(
            "/echo", data={"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        refused(response, "cross-site request")
        assert writes(b) == 0


def test_same_origin_requests_with_a_token_are_accepted(site: Site) -> None:
    with site.browser() as b:
        variants: list[dict[str, str]] = [
            {},  # no Origin at all (older browsers, non-browser clients): the token decides
            {"Origin": site.url, "Sec-Fetch-Site": "same-origin"},
            {"Origin": site.url.replace("http://", "HTTP://")},  # case does not matter
            {"Sec-Fetch-Site": "same-site"},
            {"Sec-Fetch-Site": "none"},  # typed in the address bar, a bookmark
        ]
        for n, headers in enumerate(variants, start=1):
            response = b.post("/echo", json={"n": n}, headers={**headers, HEADER: render(b)})
            assert response.status_code == 200, (headers, response.text)
        assert writes(b) == len(variants)


def test_safe_methods_are_never_checked(site: Site) -> None:
    hostile = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    with site.browser() as b:
        render(b)
        for method in ("GET", "HEAD", "OPTIONS"):
            response = b.request(method, "/echo", headers=hostile)
            assert response.status_code == 200, (method, response.text)
    assert not [e for e in site.sink.events if e.name == csrf.REJECTED]


def test_trusted_origins_may_post_from_another_site(tmp_path: Path) -> None:
    config = SessionConfig(trusted_origins=("https://app.example.com",))
    for edge in EDGES:
        with running(edge, tmp_path / edge, config) as site, site.browser() as b:
            token = render(b)
            front_end = {"Origin": "https://APP.example.com:443", "Sec-Fetch-Site": "cross-site"}
            response = b.post("/echo", json={}, headers={**front_end, HEADER: token})
            assert response.status_code == 200, (edge, response.text)
            other = {"Origin": "https://app.example.com.evil", HEADER: token}
            refused(b.post("/echo", json={}, headers=other), "origin mismatch")
            refused(
                b.post("/echo", json={}, headers={"Sec-Fetch-Site": "cross-site", HEADER: token}),
                "cross-site request",
            )


# -- where the token is -------------------------------------------------------------------
def test_a_form_field_token_works_and_the_app_reads_the_whole_body(site: Site) -> None:
    with site.browser() as b:
        fields = {"csrf_token": render(b), "item": "hat", "note": "ü & = +" * 2000}
        response = b.post("/echo", data=fields)
        assert response.status_code == 200, response.text
        assert response.json()["form"] == fields

        upload = bytes(range(256)) * 2000  # ~500 KB: arrives in many chunks
        fields = {"csrf_token": render(b), "item": "scarf"}
        response = b.post("/echo", data=fields, files={"photo": ("p.bin", upload)})
        assert response.status_code == 200, response.text
        assert response.json()["form"] == fields
        assert response.json()["files"] == {"photo": len(upload)}
        assert writes(b) == 2


def test_a_header_token_works_for_any_body(site: Site) -> None:
    with site.browser() as b:
        for method in UNSAFE:
            body = {"method": method, "items": list(range(100))}
            response = b.request(method, "/echo", json=body, headers={HEADER: render(b)})
            assert response.status_code == 200, response.text
            assert response.json()["json"] == body
        # A header token wins over the form field: a wrong header is not rescued by a field.
        response = b.post("/echo", data={"csrf_token": render(b)}, headers={HEADER: "wrong"})
        refused(response, "invalid token")
        # A form without the field, a JSON body without the header: nothing to check against.
        refused(b.post("/echo", data={"item": "hat"}), "missing token")
        refused(b.post("/echo", json={"csrf_token": render(b)}), "missing token")
        assert writes(b) == len(UNSAFE)


def test_a_form_too_large_to_search_must_send_the_header(site: Site) -> None:
    with site.browser() as b:
        token = render(b)
        big = {"csrf_token": token, "blob": "x" * (MAX_FORM_BODY + 10)}
        response = b.post("/echo", data=big)
        if site.edge == "flask":
            # Flask parses forms itself (request.form, within the app's own limits such as
            # MAX_CONTENT_LENGTH), so nothing is buffered twice and the field is found.
            assert response.status_code == 200, response.text
            assert response.json()["form"] == big
        else:
            refused(response, csrf.Rejection.BODY_TOO_LARGE.message)
            assert "header" in response.text
        upload = b"\x00" * (MAX_FORM_BODY + 10)
        response = b.post(
            "/echo", data={"item": "big"}, files={"f": ("f", upload)}, headers={HEADER: token}
        )
        assert response.status_code == 200, response.text
        assert response.json()["files"] == {"f": len(upload)}
        assert writes(b) == (2 if site.edge == "flask" else 1)


# -- what is exempt -------------------------------------------------------------------------
def test_bearer_requests_are_exempt(site: Site) -> None:
    with httpx.Client(base_url=site.url) as api:
        response = api.post("/login?user=bot", headers={"X-Session-Transport": "bearer"})
        assert response.status_code == 200, response.text
        assert "set-cookie" not in response.headers
        auth = {"Authorization": f"Bearer {response.headers['x-session-token']}"}
        for method in UNSAFE:
            # No token, and even a foreign Origin: a page on another site cannot make a
            # browser send this header, so there is no ambient credential to forge with.
            headers = {**auth, "Origin": "https://elsewhere.example"}
            response = api.request(method, "/echo", json={"m": method}, headers=headers)
            assert response.status_code == 200, response.text
        state = api.get("/read", headers=auth).json()
        assert state["user"] == "bot" and state["data"] == {"writes": len(UNSAFE)}


def test_exempt_paths_skip_the_check_and_nothing_else_does(site: Site) -> None:
    hostile = {"Origin": "https://payments.example", "Sec-Fetch-Site": "cross-site"}
    with httpx.Client(base_url=site.url) as sender:
        response = sender.post("/webhooks/stripe", content=b"{}" * 10, headers=hostile)
        assert (response.status_code, response.text) == (200, "received 20")
        refused(
            sender.post("/webhooks-extra", content=b"{}", headers=hostile), "cross-site request"
        )
        refused(sender.post("/webhooks-extra", content=b"{}"), "missing token")


def test_unrouted_requests_are_not_checked_by_flask(tmp_path: Path) -> None:
    """Flask answers 404 / 405 itself (no view runs); the middlewares check every path."""
    with running("flask", tmp_path) as site, site.browser() as b:
        assert b.post("/nowhere").status_code == 404
        assert b.post("/read").status_code == 405
    with running("asgi", tmp_path / "asgi") as site, site.browser() as b:
        refused(b.post("/nowhere"), "missing token")


# -- rotation, events, opt-out ------------------------------------------------------------
def test_the_secret_rotates_at_login(site: Site) -> None:
    with site.browser() as b:
        before = render(b)
        assert b.post("/echo", json={}, headers={HEADER: before}).status_code == 200
        anonymous_secret = csrf.unmask(before)
        response = b.post("/login?user=alice", headers={HEADER: before})
        assert response.status_code == 200, response.text
        refused(b.post("/echo", json={}, headers={HEADER: before}), "invalid token")
        after = render(b)
        assert csrf.unmask(after) != anonymous_secret
        assert b.post("/echo", json={}, headers={HEADER: after}).status_code == 200
        assert b.get("/read").json()["user"] == "alice"


def test_rejections_emit_an_event_naming_the_handle_only(site: Site) -> None:
    with site.browser() as b:
        token = render(b)
        handle = b.get("/read").json()["handle"]
        b.post("/echo", json={}, headers={"Origin": "null", HEADER: token})
        b.request("PUT", "/echo", json={}, headers={"Sec-Fetch-Site": "cross-site"})
        b.request("DELETE", "/echo", headers={HEADER: "nope"})
        b.request("PATCH", "/echo", json={})
        session_token = b.cookies[COOKIE]
    with httpx.Client(base_url=site.url) as stranger:
        stranger.post("/echo", json={})
    rejected = [e for e in site.sink.events if e.name == csrf.REJECTED]
    assert [(e.detail["reason"], e.detail["method"]) for e in rejected] == [
        ("origin_mismatch", "POST"),
        ("cross_site", "PUT"),
        ("invalid_token", "DELETE"),
        ("missing_token", "PATCH"),
        ("missing_token", "POST"),
    ]
    assert [e.handle for e in rejected] == [handle] * 4 + [None]
    assert all(e.detail["path"] == "/echo" and e.user_id is None for e in rejected)
    text = repr(site.sink.events)
    for secret in (session_token, tokens.storage_key(session_token), token):
        assert secret not in text


def test_csrf_false_is_the_opt_out(tmp_path: Path) -> None:
    config = SessionConfig(csrf=False)
    for edge in EDGES:
        with running(edge, tmp_path / edge, config) as site, site.browser() as b:
            hostile = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
            response = b.post("/echo", data={"item": "hat"}, headers=hostile)
            assert response.status_code == 200, (edge, response.text)
            assert response.json()["form"] == {"item": "hat"}
            assert csrf.REJECTED not in site.sink.names()


# -- the pieces on their own ------------------------------------------------------------------
def test_masking_round_trips_and_refuses_anything_else() -> None:
    secret = bytes(range(32))
    masked = {csrf.mask(secret) for _ in range(50)}
    assert len(masked) == 50 and {csrf.unmask(m) for m in masked} == {secret}
    assert csrf.unmask("A" * 85) is None and csrf.unmask("A" * 87) is None
    assert csrf.unmask("=" * csrf.TOKEN_LENGTH) is None
    assert csrf.unmask("+" * csrf.TOKEN_LENGTH) is None  # base64url only
    assert csrf.is_unsafe("post") and csrf.is_unsafe("PROPFIND")
    assert not any(map(csrf.is_unsafe, ["GET", "head", "OPTIONS", "TRACE"]))


@settings(max_examples=300, deadline=None)
@given(presented=st.one_of(st.text(max_size=200), st.text("AB-_9", min_size=86, max_size=86)))
def test_check_token_never_raises_and_never_accepts_a_stranger(presented: str) -> None:
    manager = SessionManager(MemoryStore(), clock=FakeClock())
    session = manager.load_sync(None)
    session.csrf_token()
    assert csrf.check_token(session, presented) is False
    assert csrf.check_token(manager.load_sync(None), presented) is False  # no secret at all


def test_origins_normalize_like_a_browser_serializes_them() -> None:
    n = csrf.normalize_origin
    assert n("HTTPS://Example.COM:443") == "https://example.com"
    assert n("http://example.com:80") == "http://example.com"
    assert n("https://example.com:8443") == "https://example.com:8443"
    assert n(" http://[::1]:8000 ") == "http://[::1]:8000"
    for bad in (
        "null",
        "",
        "example.com",
        "https://a.example/",
        "https://a, https://b",
        "https://user@a.example",
        "https://a.example?x",
        "https://",
    ):
        assert n(bad) is None, bad
    assert csrf.own_origin("https", "shop.example:443") == "https://shop.example"
    assert csrf.own_origin("http", None) is None


def test_config_reads_trusted_origins_and_refuses_bad_ones() -> None:
    env = {
        "COATCHECK_TRUSTED_ORIGINS": " https://a.example , https://b.example:8443,",
        "COATCHECK_CSRF": "off",
        "COATCHECK_CSRF_HEADER": "X-XSRF-Token",
        "COATCHECK_CSRF_FIELD": "_csrf",
    }
    config = SessionConfig.from_env(env)
    assert config.trusted_origins == ("https://a.example", "https://b.example:8443")
    assert (config.csrf, config.csrf_header, config.csrf_field) == (False, "X-XSRF-Token", "_csrf")
    assert SessionConfig().csrf is True  # on by default
    assert SessionConfig(trusted_origins=["https://a.example"]).trusted_origins == (
        "https://a.example",
    )
    for bad in (("a.example",), ("https://a.example/path",), ("null",), "https://a.example"):
        with pytest.raises(ConfigError, match="trusted_origins"):
            SessionConfig(trusted_origins=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="csrf_header"):
        SessionConfig(csrf_header="X CSRF")


def test_custom_header_and_field_names_are_honoured(tmp_path: Path) -> None:
    config = SessionConfig(csrf_header="X-XSRF-Token", csrf_field="_csrf")
    for edge in EDGES:
        with running(edge, tmp_path / edge, config) as site, site.browser() as b:
            response = b.post("/echo", json={}, headers={"X-XSRF-Token": render(b)})
            assert response.status_code == 200, (edge, response.text)
            response = b.post("/echo", data={"_csrf": render(b)})
            assert response.status_code == 200, (edge, response.text)
            refused(b.post("/echo", json={}, headers={HEADER: render(b)}), "missing token")


def test_form_field_finds_the_field_in_either_encoding() -> None:
    assert (
        form_field("application/x-www-form-urlencoded", b"a=1&csrf_token=x%2Dy", "csrf_token")
        == "x-y"
    )
    body = (
        b'--B\r\nContent-Disposition: form-data; name="f"; filename="csrf_token"\r\n\r\n'
        b'file\r\n--B\r\nContent-Disposition: form-data; name="csrf_token"; filename="t"\r\n'
        b'\r\nupload\r\n--B\r\ncontent-disposition: form-data; name="csrf_token"\r\n\r\n'
        b"tok\r\n--B--\r\n"
    )
    assert form_field('multipart/form-data; boundary="B"', body, "csrf_token") == "tok"
    assert form_field("multipart/form-data", body, "csrf_token") is None  # no boundary
    assert form_field("text/plain", b"csrf_token=x", "csrf_token") is None


# -- property: nothing cross-site gets through, nothing crashes ------------------------------
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)
origins = st.one_of(
    st.none(),
    st.sampled_from(["https://shop", "https://shop:443", "HTTPS://SHOP", " https://shop "]),
    st.sampled_from(
        [
            "http://shop",
            "https://shop:8443",
            "https://shop.evil",
            "https://evil.example",
            "null",
            "https://shop/",
            "https://shop, https://shop",
            "https://user@shop",
        ]
    ),
    header_text,
)
fetch_sites = st.one_of(
    st.none(),
    st.sampled_from(["same-origin", "same-site", "none"]),
    st.sampled_from(["cross-site", "CROSS-SITE", " cross-site"]),
    header_text,
)


def property_app(edge: str, manager: SessionManager, calls: list[str]) -> Any:
    if edge == "asgi":

        async def asgi_echo(request: Request) -> Response:
            calls.append(request.method)
            if request.method != "HEAD":
                await request.body()
            return PlainTextResponse("ok")

        routes = [Route("/echo", asgi_echo, methods=ALL_METHODS)]
        return ASGIMiddleware(Starlette(routes=routes), manager=manager)

    def wsgi_echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        calls.append(environ["REQUEST_METHOD"])
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return WSGIMiddleware(wsgi_echo, manager=manager)


def is_cross_site(origin: str | None, fetch_site: str | None) -> bool:
    """The test's own oracle: what counts as cross-site for the site https://shop."""
    if fetch_site is not None and fetch_site.strip().lower() == "cross-site":
        return True
    return origin is not None and origin.strip().lower() not in ("https://shop", "https://shop:443")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edge=st.sampled_from(["asgi", "wsgi"]),
    method=st.sampled_from(ALL_METHODS),
    origin=origins,
    fetch_site=fetch_sites,
    which_token=st.sampled_from(["valid", "foreign", "none", "arbitrary"]),
    arbitrary=header_text,
    in_form=st.booleans(),
    with_cookie=st.booleans(),
)
def test_no_cross_site_unsafe_request_is_ever_accepted_and_nothing_crashes(
    edge: str,
    method: str,
    origin: str | None,
    fetch_site: str | None,
    which_token: str,
    arbitrary: str,
    in_form: bool,
    with_cookie: bool,
) -> None:
    manager = SessionManager(MemoryStore(), clock=FakeClock())
    victim = manager.load_sync(None)
    valid = victim.csrf_token()
    cookie = manager.commit_sync(victim).token
    other = manager.load_sync(None)
    foreign = other.csrf_token()
    manager.commit_sync(other)
    token = {"valid": valid, "foreign": foreign, "none": None, "arbitrary": arbitrary}[which_token]

    headers: dict[str, bytes] = {}
    if with_cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}".encode()
    if origin is not None:
        headers["Origin"] = origin.encode("latin-1")
    if fetch_site is not None:
        headers["Sec-Fetch-Site"] = fetch_site.encode("latin-1")
    body = b""
    if token is not None and in_form and method not in ("GET", "HEAD"):
        body = urllib.parse.urlencode({"csrf_token": token, "item": "hat"}).encode("latin-1")
        headers["Content-Type"] = b"application/x-www-form-urlencoded"
    elif token is not None:
        headers[HEADER] = token.encode("latin-1")

    calls: list[str] = []
    app = property_app(edge, manager, calls)
    if edge == "asgi":
        status, text, set_cookies = asyncio.run(call_asgi(app, method, headers, body))
    else:
        status, text, set_cookies = call_wsgi(app, method, headers, body)

    assert status != 500
    if method in ("GET", "HEAD", "OPTIONS"):
        assert status == 200 and calls == [method]
        return
    cross = is_cross_site(origin, fetch_site)
    genuine = which_token == "valid" or (which_token == "arbitrary" and arbitrary == valid)
    event(f"{'cross-site' if cross else 'same-site'}, {'valid' if genuine else 'bad'} token")
    if cross or not genuine or not with_cookie:
        assert status == 403, text
        assert calls == []  # the app never saw it
        assert set_cookies == []  # and nothing was committed
        if cross:
            assert text in (
                "CSRF check failed: cross-site request\n",
                "CSRF check failed: origin mismatch\n",
            )
        else:
            assert text.startswith("CSRF check failed: ")
    else:
        assert status == 200, text
        assert calls == [method]


async def call_asgi(
    app: Any, method: str, headers: dict[str, bytes], body: bytes
) -> tuple[int, str, list[str]]:
    """One request to an ASGI app through httpx's in-process transport."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://shop") as client:
        response = await client.request(method, "/echo", headers=headers, content=body)
    return response.status_code, response.text, response.headers.get_list("set-cookie")


def call_wsgi(
    app: Any, method: str, headers: dict[str, bytes], body: bytes
) -> tuple[int, str, list[str]]:
    """One request to a WSGI app, environ built by hand: header values are latin-1 text
    (PEP 3333), which httpx's WSGI transport would refuse beyond ASCII."""
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(
        {
            "REQUEST_METHOD": method,
            "PATH_INFO": "/echo",
            "wsgi.url_scheme": "https",
            "HTTP_HOST": "shop",
            "SERVER_PORT": "443",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
        }
    )
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value.decode("latin-1")
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> Any:
        started.append((status, response_headers))
        return lambda data: None

    chunks = list(app(environ, start_response))
    status, response_headers = started[-1]
    cookies = [v for k, v in response_headers if k.lower() == "set-cookie"]
    return int(status.split()[0]), b"".join(chunks).decode(), cookies
