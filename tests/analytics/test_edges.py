"""Every edge records page views: ASGI (Starlette's route template), WSGI, Flask (its URL
rule), Django (its resolver's route) and the service's forward-auth (``X-Forwarded-Uri``),
only when the gate allows, and a dead analytics store never fails a request.

Consent is the privacy layer's (``session.consent``); these tests pass explicit gates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from coatcheck.analytics.setup import Analytics
from coatcheck.analytics.sqlite_store import SQLiteAnalytics
from coatcheck.core.config import SessionConfig
from coatcheck.engine.manager import SessionManager
from coatcheck.integrations.asgi import SessionMiddleware as AsgiMiddleware
from coatcheck.integrations.flask import init_app
from coatcheck.integrations.wsgi import SessionMiddleware as WsgiMiddleware
from coatcheck.integrations.wsgi import get_session
from coatcheck.stores import MemoryStore, SQLiteStore

HTML = {"accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def allow(session: Any) -> bool:
    return True


def deny(session: Any) -> bool:
    return False


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[SessionManager, Analytics]]:
    manager = SessionManager(MemoryStore(), SessionConfig())
    analytics = Analytics.build(SQLiteAnalytics(str(tmp_path / "a.db")), gate=allow)
    analytics.attach(manager)
    yield manager, analytics
    analytics.close()


def pages(analytics: Analytics) -> list[tuple[Any, ...]]:
    assert analytics.writer.flush()
    return [
        (r["kind"], r["name"], r["method"], r["status"], r["previous"], r["browser"])
        for r in analytics.store.rows()
        if r["kind"] != "lifecycle"
    ]


# -- ASGI ----------------------------------------------------------------------------------
def product(request: Request) -> PlainTextResponse:
    request.session["seen"] = request.path_params["id"]
    request.session.track("product.viewed", {"id": request.path_params["id"]})
    return PlainTextResponse("product")


def home(request: Request) -> PlainTextResponse:
    request.session["home"] = True
    return PlainTextResponse("home")


def asgi_app(manager: SessionManager) -> AsgiMiddleware:
    routes = [Route("/", home), Route("/products/{id}", product)]
    return AsgiMiddleware(Starlette(routes=routes), manager=manager)


async def asgi_visit(app: AsgiMiddleware, *paths: str, headers: dict[str, str]) -> list[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        return [
            (await client.get(p, headers={**headers, "user-agent": AGENT})).status_code
            for p in paths
        ]


def test_asgi_records_the_route_template_and_the_tracked_event(
    recorded: tuple[SessionManager, Analytics],
) -> None:
    manager, analytics = recorded
    codes = asyncio.run(asgi_visit(asgi_app(manager), "/", "/products/42?x=1", headers=HTML))
    assert codes == [200, 200]
    assert pages(analytics) == [
        ("page", "/", "GET", 200, None, "Firefox"),
        ("page", "/products/{id}", "GET", 200, "/", "Firefox"),
        ("event", "product.viewed", None, None, "/products/{id}", "Firefox"),
    ]


def test_asgi_records_nothing_without_consent_or_under_gpc(tmp_path: Path) -> None:
    manager = SessionManager(MemoryStore())
    analytics = Analytics.build(SQLiteAnalytics(str(tmp_path / "a.db")), gate=deny).attach(manager)
    asyncio.run(asgi_visit(asgi_app(manager), "/", "/products/1", headers=HTML))
    assert pages(analytics) == []
    other = SessionManager(MemoryStore())
    allowed = Analytics.build(SQLiteAnalytics(str(tmp_path / "b.db")), gate=allow).attach(other)
    asyncio.run(asgi_visit(asgi_app(other), "/", headers={**HTML, "sec-gpc": "1"}))
    assert pages(allowed) == []
    analytics.close()
    allowed.close()


def test_a_dead_analytics_store_is_never_a_5xx(recorded: tuple[SessionManager, Analytics]) -> None:
    manager, analytics = recorded
    app = asgi_app(manager)
    analytics.store.close()  # the analytics store goes down
    assert asyncio.run(asgi_visit(app, "/", "/products/7", "/", headers=HTML)) == [200, 200, 200]
    assert analytics.writer.flush()
    stats = analytics.writer.stats()
    assert stats.written == 0 and stats.failed >= 4  # 3 page views and an event, lost


# -- WSGI ----------------------------------------------------------------------------------
def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    get_session(environ)["n"] = 1
    start_response("201 Created", [("content-type", "text/plain")])
    return [b"ok"]


def test_wsgi_records_the_folded_path(recorded: tuple[SessionManager, Analytics]) -> None:
    manager, analytics = recorded
    app = WsgiMiddleware(wsgi_app, manager=manager)  # type: ignore[arg-type]
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="https://testserver") as c:
        c.get("/orders/12345", headers={**HTML, "user-agent": AGENT})
        c.get("/api/orders/12345", headers={"accept": "application/json"})  # no page view
    assert pages(analytics) == [("page", "/orders/{id}", "GET", 201, None, "Firefox")]


# -- Flask ---------------------------------------------------------------------------------
def test_flask_records_its_url_rule(recorded: tuple[SessionManager, Analytics]) -> None:
    manager, analytics = recorded
    app = flask.Flask(__name__)

    @app.get("/items/<int:item>")
    def item(item: int) -> str:
        flask.session["item"] = item
        return "item"

    init_app(app, manager)
    client = app.test_client()
    client.get("/items/5", headers={**HTML, "user-agent": AGENT}, base_url="https://localhost")
    assert pages(analytics) == [("page", "/items/{item}", "GET", 200, None, "Firefox")]


# -- the service's forward-auth --------------------------------------------------------------
def test_forward_auth_records_the_forwarded_uri_and_the_summary_answers(tmp_path: Path) -> None:
    from coatcheck.engine.operations import run_sync
    from coatcheck.service.apikeys import create
    from coatcheck.service.app import create_app
    from coatcheck.service.context import Service
    from coatcheck.service.metrics import Metrics
    from coatcheck.service.reserved import server_store
    from coatcheck.service.settings import ServiceSettings

    store = SQLiteStore(tmp_path / "s.db")
    manager = SessionManager(store)
    analytics = Analytics.build(SQLiteAnalytics(str(tmp_path / "a.db")), gate=allow).attach(manager)
    service = Service.build(manager, ServiceSettings(), Metrics())
    assert service.analytics is analytics
    key = run_sync(create("admin", ["admin"], manager.clock()), server_store(store))
    session = manager.load_sync(None)
    session.login("u1")
    token = manager.commit_sync(session).token
    app = create_app(manager, service)

    async def calls() -> tuple[int, dict[str, Any]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            forwarded = {
                "cookie": f"__Host-session={token}",
                "x-forwarded-uri": "/orders/77?coupon=x",
                "x-forwarded-method": "GET",
                "user-agent": AGENT,
                **HTML,
            }
            answer = await client.get("/v1/forward-auth", headers=forwarded)
            await client.get("/v1/forward-auth", headers={**forwarded, "accept": "*/*"})
            assert analytics.writer.flush()
            report = await client.get(
                "/v1/analytics/summary",
                params={"since": "1h"},
                headers={"authorization": f"Bearer {key}"},
            )
            scraped = await client.get("/metrics")
            # created and login (the lifecycle events of the sign-in), then the page view
            assert 'coatcheck_analytics_rows_total{outcome="written"} 3' in scraped.text
            return answer.status_code, report.json()

    status, report = asyncio.run(calls())
    assert status == 200
    assert pages(analytics) == [("page", "/orders/{id}", "GET", 200, None, "Firefox")]
    assert report["visits"] == 1
    assert report["top_pages"] == [{"route": "/orders/{id}", "views": 1}]
    analytics.close()


def test_the_summary_needs_admin_a_range_that_parses_and_analytics_on(tmp_path: Path) -> None:
    from coatcheck.engine.operations import run_sync
    from coatcheck.service.apikeys import create
    from coatcheck.service.app import create_app
    from coatcheck.service.context import Service
    from coatcheck.service.metrics import Metrics
    from coatcheck.service.reserved import server_store
    from coatcheck.service.settings import ServiceSettings

    def service(analytics: bool) -> tuple[Any, str, str]:
        store = SQLiteStore(tmp_path / f"s{analytics}.db")
        manager = SessionManager(store)
        if analytics:
            Analytics.build(SQLiteAnalytics(str(tmp_path / "a.db")), gate=allow).attach(manager)
        app = create_app(manager, Service.build(manager, ServiceSettings(), Metrics()))
        clock = manager.clock()
        admin = run_sync(create("admin", ["admin"], clock), server_store(store))
        other = run_sync(create("sessions", ["sessions"], clock), server_store(store))
        return app, admin, other

    async def get(app: Any, key: str, **params: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            return await client.get(
                "/v1/analytics/summary", params=params, headers={"authorization": f"Bearer {key}"}
            )

    on, admin, other = service(True)
    assert asyncio.run(get(on, admin, since="24h")).status_code == 200
    assert asyncio.run(get(on, other, since="24h")).status_code == 403  # not an admin key
    for bad in ({"since": "soon"}, {"since": "500d"}, {"since": "1h", "until": "2h"}):
        answer = asyncio.run(get(on, admin, **bad))
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"] == "application/problem+json"
    off, off_admin, _ = service(False)
    assert asyncio.run(get(off, off_admin)).status_code == 404
