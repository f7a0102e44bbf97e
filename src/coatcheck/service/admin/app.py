"""The dashboard as one ASGI app: a Starlette app of the pages and actions, inside a
``SessionMiddleware`` of its own (the admin sessions' manager, cookie and CSRF check).

The service routes ``/admin`` and everything below it here (``AdminPaths``), before its
own API and the demo shop: the dashboard's refusals are pages, not problem documents.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from coatcheck.errors import CoatcheckError, StoreUnavailable
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.service.admin import actions, auth, pages
from coatcheck.service.admin.data import DashboardData, LocalData, RecentEvents
from coatcheck.service.admin.web import HEADERS, HERE, PREFIX, Admin, templates
from coatcheck.service.context import Service
from coatcheck.service.health import ActiveCount
from coatcheck.service.metrics import ASGIApp, Scope

STYLESHEET: Final = (HERE / "static" / "admin.css").read_bytes()


async def stylesheet(request: Request) -> Response:
    return Response(
        STYLESHEET,
        media_type="text/css",
        headers={"cache-control": "max-age=3600", "x-content-type-options": "nosniff"},
    )


def _error_page(status: int, title: str, text: str) -> HTMLResponse:
    html = templates.get_template("error.html").render(title=title, text=text, prefix=PREFIX)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


async def _unavailable(request: Request, exc: Exception) -> Response:
    response = _error_page(503, "Store unavailable", "The session store did not answer.")
    response.headers["retry-after"] = "1"
    return response


async def _engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoatcheckError)
    return _error_page(getattr(exc, "status", 400), "Refused", str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error_page(404, "Not found", "No page of the dashboard is here.")


ROUTES: Final = [
    Route(PREFIX, pages.overview, name="admin.overview"),
    Route(PREFIX + "/", pages.overview, name="admin.overview.slash"),
    Route(PREFIX + "/signin", actions.sign_in_page, name="admin.signin"),
    Route(PREFIX + "/signin", actions.sign_in, methods=["POST"], name="admin.signin.post"),
    Route(PREFIX + "/signout", actions.sign_out, methods=["POST"], name="admin.signout"),
    Route(PREFIX + "/users", pages.users, name="admin.users"),
    Route(PREFIX + "/sessions/revoke", actions.revoke, methods=["POST"], name="admin.revoke"),
    Route(PREFIX + "/users/revoke", actions.revoke_all, methods=["POST"], name="admin.revoke_all"),
    Route(PREFIX + "/security", pages.security, name="admin.security"),
    Route(PREFIX + "/consent", pages.consent, name="admin.consent"),
    Route(PREFIX + "/static/admin.css", stylesheet, name="admin.css"),
]


def create_admin(
    service: Service, data: DashboardData | None = None, recent: RecentEvents | None = None
) -> ASGIApp:
    """The dashboard over ``service``. ``data`` provides its figures (``LocalData`` over
    ``recent`` when None: security events only); ``recent`` also receives the admin
    sessions' own security events."""
    recent = recent if recent is not None else RecentEvents()
    manager = auth.admin_manager(service.manager, [recent])
    app = Starlette(
        routes=ROUTES,
        exception_handlers={
            StoreUnavailable: _unavailable,
            CoatcheckError: _engine_error,
            404: _not_found,
        },
    )
    app.state.coatcheck_admin = Admin(
        service=service,
        manager=manager,
        data=data if data is not None else LocalData(recent),
        active=ActiveCount(),
    )
    return SessionMiddleware(app, manager=manager)


def is_admin_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


class AdminPaths:
    """ASGI: ``/admin`` and below to the dashboard, everything else to ``app``."""

    def __init__(self, admin: ASGIApp, app: ASGIApp) -> None:
        self.admin = admin
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and is_admin_path(scope.get("path", "")):
            await self.admin(scope, receive, send)
        else:
            await self.app(scope, receive, send)
