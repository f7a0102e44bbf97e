"""The service as one ASGI app: the ``/v1`` API, forward-auth, health, metrics, the JWKS,
the OpenAPI document (``/openapi.json``, ``/docs``), the admin dashboard (``/admin``,
``service.admin``), and whatever the caller mounts below them (the command line mounts the
demo shop at ``/``).

Around FastAPI sit two small ASGI layers: ``RequestTimer`` (latency per operation) and
``BodyLimit`` (a ``/v1`` body over the limit is a 413 before any parsing). Every refusal,
FastAPI's own included (validation, unknown route, wrong method), leaves as a problem
document; a store failure is a 503 with ``Retry-After``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import metadata
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response

from coatcheck.engine.manager import SessionManager
from coatcheck.errors import CoatcheckError
from coatcheck.integrations.asgi import buffer_body
from coatcheck.service import api, forward_auth, health, models, problems, rights
from coatcheck.service.admin import AdminPaths, DashboardData, RecentEvents, create_admin
from coatcheck.service.admin.providers import service_data
from coatcheck.service.context import Service
from coatcheck.service.metrics import FALLBACK_KEY, ASGIApp, RequestTimer, Scope
from coatcheck.service.problems import Problem
from coatcheck.service.retention import RetentionTask

logger = logging.getLogger("coatcheck.service")

ENVELOPE: Final = 16 * 1024
"""Bytes a body may hold beyond the session data limit: the token, field names, JSON."""


def body_limit(manager: SessionManager) -> int:
    return manager.config.max_data_bytes + ENVELOPE


class BodyLimit:
    """ASGI middleware: a ``/v1`` request body over ``limit`` bytes is answered 413 (a
    problem document) without being read further; a smaller one is read whole and replayed
    to the app."""

    def __init__(self, app: ASGIApp, limit: int, prefix: str = "/v1/") -> None:
        self.app = app
        self.limit = limit
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
        body, replay = await buffer_body(receive, self.limit, declared)
        if body is None:
            detail = f"the body is over {self.limit} bytes"
            await problems.response(Problem(problems.BODY_TOO_LARGE, detail))(scope, receive, send)
            return
        await self.app(scope, replay, send)


SERVICE_PATHS: Final = (
    "/v1/",
    "/openapi.json",
    "/docs",
    "/healthz",
    "/readyz",
    "/metrics",
    "/.well-known/",
)


class Dispatch:
    """ASGI: the service's own paths to the service, every other path to ``fallback``
    (the demo shop). Not a mount inside FastAPI: a mount at ``/`` would answer for the
    API's unknown paths and wrong methods, which must be the API's problem documents."""

    def __init__(self, service: ASGIApp, fallback: ASGIApp) -> None:
        self.service = service
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" or scope.get("path", "").startswith(SERVICE_PATHS):
            await self.service(scope, receive, send)
        else:
            scope[FALLBACK_KEY] = True
            await self.fallback(scope, receive, send)


def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoatcheckError)
    problem = problems.from_engine(exc)
    if problem.kind is problems.STORE_UNAVAILABLE and not isinstance(exc, Problem):
        logger.warning("session store unavailable on %s: %s", request.url.path, exc)
    return problems.response(problem, request.url.path)


def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = problems.validation_errors(exc.errors(), models.FIELD_NAMES)
    problem = Problem(problems.INVALID_BODY, "the request does not fit this call", errors=errors)
    return problems.response(problem, request.url.path)


def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        problem = Problem(problems.NOT_FOUND, "no such resource")
    elif exc.status_code == 405:
        allow = {"allow": ", ".join(allowed_methods(request))}
        problem = Problem(problems.METHOD_NOT_ALLOWED, "method not allowed here", headers=allow)
    else:  # a body that does not parse (too deeply nested JSON, say)
        problem = Problem(problems.INVALID_BODY, str(exc.detail))
    return problems.response(problem, request.url.path)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route offers for the request's path (Starlette's own ``Allow``
    names only the first route that matched the path)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the problem schema every error response refers to."""
    if app.openapi_schema is None:
        document = FastAPI.openapi(app)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["ProblemDetails"] = models.ProblemDetails.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        security = document["components"].setdefault("securitySchemes", {})
        security["ApiKey"] = dict(api.SECURITY_SCHEME)
        keyed = [*api.router.routes, *rights.router.routes]
        for route in keyed:  # the calls that need a key, by their dependency
            if isinstance(route, APIRoute) and any(
                hasattr(d.dependency, api.SCOPE_ATTRIBUTE) for d in route.dependencies
            ):
                for method in route.methods or ():
                    operation = document["paths"][route.path_format][method.lower()]
                    operation["security"] = [{"ApiKey": []}]
        for path in document.get("paths", {}).values():
            for operation in path.values():
                # FastAPI documents its own 422 shape; ours is a problem document.
                invalid = operation.get("responses", {}).get("422")
                if invalid is not None:
                    invalid["content"] = problems.openapi_responses(problems.INVALID_BODY)[422][
                        "content"
                    ]
        app.openapi_schema = document
    return app.openapi_schema


def _version() -> str:
    """The installed package's version (``coatcheck.__version__`` is the package root's,
    which no layer imports)."""
    try:
        return metadata.version("coatcheck")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _lifespan(
    manager: SessionManager, service: Service, retention: RetentionTask | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the retention task with the app; on shutdown stop it and close the privacy
    holders and the store."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if retention is not None:
            retention.start()
        try:
            yield
        finally:
            if retention is not None:
                await retention.stop()
            if service.privacy is not None:
                await service.privacy.close()
            await manager.store.close()

    return lifespan


def create_app(
    manager: SessionManager,
    service: Service,
    *,
    fallback: ASGIApp | None = None,
    dashboard: DashboardData | None = None,
    recent: RecentEvents | None = None,
) -> ASGIApp:
    """The service over ``manager`` (whose store holds the sessions, the API keys and the
    JWT ring); requests for any path that is not the service's go to ``fallback``.

    ``/admin`` is the dashboard, its figures from ``dashboard`` (None: the service's own
    analytics and consent ledger, ``admin.providers.service_data``, with the security
    events of this process, which ``recent``, a bounded in-memory sink added to the
    manager's sinks, keeps)."""

    retention = RetentionTask(manager, service.privacy) if service.privacy is not None else None
    app = FastAPI(
        title="coatcheck session service",
        version=_version(),
        description="Create, check and end sessions over HTTP; see docs/service.md.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=_lifespan(manager, service, retention),
    )
    app.state.coatcheck_service = service
    app.state.coatcheck_retention = retention
    app.state.coatcheck_active = health.ActiveCount()
    app.add_exception_handler(CoatcheckError, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    # FastAPI tries routes in order, each a regex: the calls made for every request a
    # gateway or a client serves come first (forward-auth, then introspect, the API's
    # first), the document's own pages last.
    app.include_router(forward_auth.router)
    app.include_router(api.router)
    app.include_router(rights.router)
    app.include_router(forward_auth.envoy)
    app.include_router(health.router)
    app.include_router(forward_auth.documented)  # the document's view of forward-auth
    pages = {app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url}
    own = [r for r in app.router.routes if getattr(r, "path", None) in pages]
    app.router.routes[:] = [r for r in app.router.routes if r not in own] + own

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    limited = BodyLimit(app, body_limit(manager))
    served = limited if fallback is None else Dispatch(limited, fallback)
    recent = recent if recent is not None else RecentEvents()
    if recent not in manager.sinks:
        manager.sinks.append(recent)
    if dashboard is None:
        dashboard = service_data(service, recent)
    admin = create_admin(service, dashboard, recent)
    return RequestTimer(AdminPaths(admin, served), service.metrics)
