"""What every dashboard route shares: the templates, the response headers, the admin's
state in the app, and the check that a request comes from a signed-in admin.

Pages are Jinja2 templates under ``templates/`` with autoescaping on; the only markup
that is not escaped is the SVG that ``charts`` builds (and escapes itself). Every answer
carries headers that keep it out of caches and frames and allow nothing but the
package's own stylesheet: no script runs on any page.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from coatcheck.core.session import Session
from coatcheck.engine.manager import SessionManager
from coatcheck.service.admin import auth
from coatcheck.service.admin.data import DashboardData
from coatcheck.service.apikeys import ApiKey
from coatcheck.service.context import Service
from coatcheck.service.health import ActiveCount

HERE: Final = Path(__file__).resolve().parent
PREFIX: Final = "/admin"
NOTICE: Final = "notice"
"""Session key of a one-time message for the next page ("Session revoked.")."""

HEADERS: Final = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}

templates: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(at: float | None) -> str:
    """An epoch time as ``2026-12-07 22:50 UTC``."""
    if at is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


templates.filters["when"] = when
templates.filters["svg"] = Markup  # only for the output of ``charts``


@dataclass(frozen=True, slots=True)
class Admin:
    """The dashboard's parts, kept in its app's state."""

    service: Service
    manager: SessionManager
    """The admin sessions' own manager (``auth.admin_manager``)."""
    data: DashboardData
    active: ActiveCount


def admin_state(request: Request) -> Admin:
    state = request.app.state.coatcheck_admin
    assert isinstance(state, Admin)
    return state


def session_of(request: Request) -> Session:
    session = request.scope.get("session")
    assert isinstance(session, Session), "the admin app runs inside its SessionMiddleware"
    return session


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with the session's CSRF token and its one-time notice."""
    session = session_of(request)
    html = templates.get_template(template).render(
        csrf=session.csrf_token(),
        notice=session.pop(NOTICE, None) if status < 400 else None,
        path=request.url.path,
        prefix=PREFIX,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def see_other(path: str) -> RedirectResponse:
    """303 after a post: reloading never submits it again."""
    return RedirectResponse(path, status_code=303, headers={"cache-control": "no-store"})


async def form_field(request: Request, name: str, limit: int = 256) -> str:
    """A form field as text (empty when absent, not text, or over ``limit``)."""
    value = (await request.form()).get(name)
    if not isinstance(value, str) or len(value) > limit:
        return ""
    return value.strip()


Handler = Callable[[Request, ApiKey], Awaitable[Response]]


def admin_only(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route for signed-in admins; anyone else goes to the sign-in page."""

    async def route(request: Request) -> Response:
        session = session_of(request)
        key = await auth.admin_of(session, admin_state(request).service.keys)
        if key is None:
            return see_other(PREFIX + "/signin")
        return await handler(request, key)

    route.__name__ = handler.__name__
    route.__doc__ = handler.__doc__
    return route
