"""A small Starlette app for coatcheck.js in a real browser: plain pages that say who is
signed in (``data-coatcheck-user``), what they consented to, and where the CSRF token is,
and that load the script from ``coatcheck.starlette.browser_routes()``.

``/`` signs in (a form, as without JavaScript), ``/account`` is the signed-in page with a
sign-out form, ``/api/note`` is what a front end would call with ``fetch`` (JSON in, JSON
out; 401 ``login_required`` when nobody is signed in), ``/api/revoke-others`` ends the
user's other devices.
"""

from __future__ import annotations

import html

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from coatcheck import Session, SessionManager
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.integrations.starlette import browser_routes


def page(session: Session, title: str, body: str, *, warn: int, consent: str) -> HTMLResponse:
    user = html.escape(session.user_id or "")
    return HTMLResponse(
        f'<!doctype html><html lang=en data-coatcheck-user="{user}" '
        f'data-coatcheck-consent="{consent}" data-coatcheck-warn="{warn}">'
        f"<head><meta charset=utf-8><title>{title}</title>"
        f'<meta name=csrf-token content="{session.csrf_token()}">'
        '<script type=module src="/coatcheck/coatcheck.js"></script></head>'
        f"<body><h1>{title}</h1>{body}</body></html>"
    )


def create_js_app(
    manager: SessionManager, *, warn: int = 60, consent: str = "functional"
) -> SessionMiddleware:
    def session_of(request: Request) -> Session:
        session = request.scope["session"]
        assert isinstance(session, Session)
        return session

    async def home(request: Request) -> Response:
        session = session_of(request)
        form = (
            '<form method=post action="/login"><label>User <input name=user></label> '
            "<button>Sign in</button></form>"
        )  # no csrf_token field: coatcheck.js adds it from the meta tag
        return page(session, "Sign in", form, warn=warn, consent=consent)

    async def login(request: Request) -> Response:
        user = (await request.form()).get("user")
        if not isinstance(user, str) or not user:
            return RedirectResponse("/", status_code=303)
        session_of(request).login(user)
        return RedirectResponse("/account", status_code=303)

    async def account(request: Request) -> Response:
        session = session_of(request)
        if session.user_id is None:
            return RedirectResponse("/", status_code=303)
        body = (
            f"<p>Signed in as <b>{html.escape(session.user_id)}</b>.</p>"
            '<form method=post action="/logout"><button>Sign out</button></form>'
        )
        return page(session, "Account", body, warn=warn, consent=consent)

    async def logout(request: Request) -> Response:
        session_of(request).logout()
        return RedirectResponse("/", status_code=303)

    async def note(request: Request) -> Response:
        session = session_of(request)
        if session.user_id is None:
            return JSONResponse({"error": "login_required"}, status_code=401)
        session["note"] = (await request.json())["text"]
        return JSONResponse({"saved": session["note"]})

    async def revoke_others(request: Request) -> Response:
        session = session_of(request)
        assert session.user_id is not None
        count = await manager.revoke_user(session.user_id, except_handle=session.handle)
        return JSONResponse({"revoked": count})

    routes = [
        *browser_routes(),
        Route("/", home),
        Route("/login", login, methods=["POST"]),
        Route("/account", account),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/note", note, methods=["POST"]),
        Route("/api/revoke-others", revoke_others, methods=["POST"]),
    ]
    return SessionMiddleware(Starlette(routes=routes), manager=manager)
