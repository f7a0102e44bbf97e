"""FastAPI integration: dependencies over ``coatcheck.asgi.SessionMiddleware``.

The middleware does the work (load before the app, commit as the response starts); these
dependencies only hand its results to path operations in FastAPI's own idiom::

    from coatcheck import SessionManager
    from coatcheck.fastapi import CurrentSession, CurrentUser, install, require_recent_auth
    from coatcheck.stores import from_url

    app = FastAPI()
    install(app, SessionManager(from_url("sqlite:///sessions.db")))

    @app.get("/cart")
    async def cart(session: CurrentSession) -> list[str]:
        return session.get("cart", [])

    @app.get("/account")
    async def account(user_id: CurrentUser) -> dict[str, str]:
        return {"user": user_id}

    @app.post("/account/email", dependencies=[Depends(require_recent_auth(300))])
    async def change_email() -> dict[str, bool]: ...

- ``LockedSession`` (``get_locked_session``) is ``CurrentSession`` for a route whose
  requests of one session run one at a time (``coatcheck.engine.locking``): the session's
  lock is taken and the session read again under it; a lock not had within
  ``lock_timeout`` is a 409 with ``Retry-After`` (the path operation does not run). Use
  it instead of ``CurrentSession`` in that route, not beside it.
- ``get_session`` returns the request's coatcheck ``Session`` (also for WebSocket routes,
  where it is read-only, as the middleware says).
- ``require_user`` returns the logged-in user id, or answers 401
  ``{"error": "login_required"}``.
- ``require_recent_auth(max_age)`` is a dependency factory for sensitive actions (password
  or e-mail change, ASVS): the user must have logged in within ``max_age`` seconds by the
  manager's clock, or the answer is 401 ``{"error": "reauthentication_required",
  "max_age": N}`` (``login_required`` when not logged in at all). The bodies are the ones
  ``coatcheck.flask`` sends, so a front end handles both the same way.
- ``require_level(n)``: the current authentication is of assurance level ``n`` or more
  (``session.login(user, level=n)`` or ``session.reauthenticate(level=n)``), or 401
  ``{"error": "insufficient_auth_level", "required": n, "current": m}``.

Why ``install``: FastAPI's handler for ``HTTPException`` nests every detail under
``"detail"``. ``install(app, manager)`` adds the middleware and a handler for
``AuthenticationRequired`` that sends the body as is. An app that adds the middleware
itself should also pass ``exception_handlers=EXCEPTION_HANDLERS`` to ``FastAPI(...)``
(or call ``add_exception_handlers(app)``); without it the status is still 401, with the
body ``{"detail": {"error": ...}}``.

A missing middleware is a programming error, not a client's: ``get_session`` raises
``RuntimeError`` naming ``coatcheck.asgi.SessionMiddleware``. It surfaces as the exception
itself in ``TestClient`` tests and as a logged traceback plus a plain 500 in a server,
never as a silently empty session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from coatcheck import errors
from coatcheck.core.session import Session
from coatcheck.engine.manager import SessionManager
from coatcheck.http import browser
from coatcheck.integrations.asgi import MANAGER_SCOPE_KEY, SessionMiddleware, lock_route
from coatcheck.integrations.starlette import browser_routes
from coatcheck.security import reauth as auth

__all__ = [
    "EXCEPTION_HANDLERS",
    "MANAGER_SCOPE_KEY",
    "AuthenticationRequired",
    "CurrentSession",
    "CurrentUser",
    "LockedSession",
    "add_exception_handlers",
    "authentication_required_handler",
    "browser_router",
    "get_locked_session",
    "get_manager",
    "get_session",
    "install",
    "require_level",
    "require_recent_auth",
    "require_user",
]

_MISSING = (
    "no coatcheck session in this request: add coatcheck.asgi.SessionMiddleware to the app "
    "(coatcheck.fastapi.install(app, manager), or "
    "FastAPI(middleware=[Middleware(SessionMiddleware, manager=manager)]))"
)


class AuthenticationRequired(HTTPException, errors.AuthenticationRequired):
    """401 from ``require_user`` / ``require_recent_auth`` / ``require_level``: the one
    ``coatcheck.errors.AuthenticationRequired`` of every edge, as Starlette's
    ``HTTPException`` so that FastAPI answers it even without ``EXCEPTION_HANDLERS``.

    ``reason`` is machine-readable (``login_required`` or ``reauthentication_required``);
    ``detail`` is the whole JSON body; ``problem`` the ``coatcheck.security.reauth``
    AuthProblem. An app may register its own handler for this class (say, to redirect
    browsers to a login form) instead of ``EXCEPTION_HANDLERS``.
    """

    def __init__(self, reason: str, **extra: Any) -> None:
        self.reason = reason
        body: dict[str, Any] = {"error": reason, **extra}
        # no-store: a 401 about one user's session must not be served to another by a cache.
        HTTPException.__init__(self, 401, headers={"Cache-Control": "no-store"})
        # Starlette's HTTPException does not chain to the next base: initialised by name.
        errors.AuthenticationRequired.__init__(self, auth.AuthProblem(reason, extra), reason)
        self.detail: Any = body  # Starlette types detail as str; FastAPI sends any JSON


async def authentication_required_handler(request: Request, exc: Exception) -> Response:
    """Send ``AuthenticationRequired.detail`` as the body, not nested under ``"detail"``."""
    assert isinstance(exc, AuthenticationRequired)
    return JSONResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]

EXCEPTION_HANDLERS: Mapping[Any, ExceptionHandler] = {
    AuthenticationRequired: authentication_required_handler
}
"""``FastAPI(exception_handlers=dict(EXCEPTION_HANDLERS), ...)`` for apps that add the
middleware themselves."""


def add_exception_handlers(app: FastAPI) -> None:
    """Register the handler that sends the 401 bodies of this module as documented."""
    for exc_class, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exc_class, handler)


def install(app: FastAPI, manager: SessionManager) -> None:
    """Add ``coatcheck.asgi.SessionMiddleware`` (with ``manager``) and the 401 handler.

    Call it while building the app (Starlette refuses middleware once the app runs).
    """
    app.add_middleware(SessionMiddleware, manager=manager)
    add_exception_handlers(app)


# -- dependencies --------------------------------------------------------------------------


async def get_session(connection: HTTPConnection) -> Session:
    """The request's coatcheck Session (``Depends(get_session)`` or ``CurrentSession``)."""
    session = connection.scope.get("session")
    if isinstance(session, Session):
        return session
    if session is None:
        raise RuntimeError(_MISSING)
    raise RuntimeError(
        f"scope['session'] is a {type(session).__name__}, not a coatcheck Session: another "
        "session middleware (Starlette's?) runs inside coatcheck.asgi.SessionMiddleware; "
        "remove it"
    )


async def get_manager(connection: HTTPConnection) -> SessionManager:
    """The SessionManager of the middleware that served this request (its clock, config,
    ``list_user_sessions`` and ``revoke_user`` for "your devices" pages)."""
    manager = connection.scope.get(MANAGER_SCOPE_KEY)
    if not isinstance(manager, SessionManager):
        raise RuntimeError(_MISSING)
    return manager


CurrentSession = Annotated[Session, Depends(get_session)]
"""A path-operation parameter type: ``async def view(session: CurrentSession)``."""


async def get_locked_session(connection: HTTPConnection) -> Session:
    """The request's Session under its lock (see the module docstring); refused with the
    edge's own 409 (or 503) as an ``HTTPException`` carrying its headers."""
    refusal = await lock_route(connection.scope)
    if refusal is not None:
        headers = {n: v for n, v in refusal.headers if n in ("retry-after", "cache-control")}
        raise HTTPException(refusal.status, refusal.body.decode().strip(), headers=headers)
    return await get_session(connection)


LockedSession = Annotated[Session, Depends(get_locked_session)]
"""``async def add_to_cart(session: LockedSession)``: requests of one session one at a time."""


async def require_user(session: CurrentSession) -> str:
    """The logged-in user's id; 401 ``{"error": "login_required"}`` when anonymous."""
    user_id = session.user_id
    if user_id is None:
        raise AuthenticationRequired(auth.LOGIN_REQUIRED)
    return user_id


CurrentUser = Annotated[str, Depends(require_user)]
"""A path-operation parameter type: ``async def view(user_id: CurrentUser)``."""


def require_recent_auth(max_age: float) -> Callable[..., Awaitable[str]]:
    """A dependency: the user logged in (or re-authenticated) within ``max_age`` seconds.

    Returns the user id, like ``require_user``. The age is measured with the manager's
    clock, the same one that enforces the session's timeouts, so an injected test clock
    drives both. Otherwise 401 ``{"error": "reauthentication_required", "max_age": N}``,
    or ``{"error": "login_required"}`` when not logged in at all.
    """
    if max_age <= 0:
        raise ValueError(f"max_age must be positive, got {max_age!r}")

    async def recent_auth(
        user_id: CurrentUser,
        session: CurrentSession,
        manager: Annotated[SessionManager, Depends(get_manager)],
    ) -> str:
        problem = auth.recent_auth_problem(session, max_age, manager.clock())
        if problem is not None:
            raise AuthenticationRequired(problem.reason, **problem.detail)
        return user_id

    return recent_auth


def require_level(level: int) -> Callable[..., Awaitable[str]]:
    """A dependency: the current authentication is of assurance ``level`` or more (step-up,
    ASVS 7.5.3). Returns the user id; otherwise 401 ``{"error": "insufficient_auth_level",
    "required": N, "current": M}``, or ``{"error": "login_required"}`` when anonymous."""

    async def has_level(user_id: CurrentUser, session: CurrentSession) -> str:
        problem = auth.level_problem(session, level)
        if problem is not None:
            raise AuthenticationRequired(problem.reason, **problem.detail)
        return user_id

    return has_level


def browser_router(prefix: str = browser.PREFIX) -> APIRouter:
    """``coatcheck.js`` and its keep-alive under ``prefix``, kept out of the OpenAPI
    schema: ``app.include_router(browser_router())``."""
    return APIRouter(routes=list(browser_routes(prefix)), include_in_schema=False)
