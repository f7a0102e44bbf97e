"""Small helpers every route of the demo shares: the request's session, its manager and
accounts, form fields, and the answers (a 303 after a post, an HTML page)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from coatcheck.core.session import Session
from coatcheck.demo.shop import Accounts
from coatcheck.engine.manager import SessionManager


def session_of(request: Request) -> Session:
    """The coatcheck session of this request (fails loudly without the middleware)."""
    session = request.scope.get("session")
    if not isinstance(session, Session):
        raise RuntimeError("wrap the demo app in coatcheck.asgi.SessionMiddleware")
    return session


def manager_of(request: Request) -> SessionManager:
    """The manager ``create_app`` was given, kept in the app's state."""
    manager = request.app.state.coatcheck_manager
    assert isinstance(manager, SessionManager)
    return manager


def accounts_of(request: Request) -> Accounts:
    """The demo's users, kept in the app's state beside the manager."""
    accounts = request.app.state.demo_accounts
    assert isinstance(accounts, Accounts)
    return accounts


async def form_field(request: Request, name: str) -> str | None:
    value = (await request.form()).get(name)
    return value if isinstance(value, str) else None


async def check_password(request: Request, username: str, password: str | None) -> bool:
    """Does ``password`` belong to ``username``? The argon2id check runs in a worker thread:
    it costs tens of milliseconds of CPU, which must not stall every other request."""
    if password is None:
        return False
    user = await run_in_threadpool(accounts_of(request).authenticate, username, password)
    return user is not None


def see_other(path: str) -> RedirectResponse:
    """303: the browser follows with a GET, so reloading never resubmits a form."""
    return RedirectResponse(path, status_code=303)


def page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status)
