"""Guards for Starlette endpoints: ``@require_user``, ``@require_recent_auth(300)``,
``@require_level(2)``; ``@locked_session``, whose requests of one session run one at a
time (``coatcheck.engine.locking``); and the routes of the browser side, ``browser_routes()``
(``coatcheck.js`` and its keep-alive, as ``coatcheck.http.browser`` answers them).

The checks are ``coatcheck.security.reauth``'s; this edge answers a failed one with a 401 JSON body
such as ``{"error": "reauthentication_required", "max_age": 300}``, never cached. The
clock is the manager's (the one that enforces the session's timeouts), so an injected
test clock drives both. Requires ``coatcheck.asgi.SessionMiddleware`` around the app.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from coatcheck.core.session import Session
from coatcheck.engine.manager import SessionManager
from coatcheck.http import browser, gpc
from coatcheck.integrations.asgi import MANAGER_SCOPE_KEY, lock_route
from coatcheck.security import reauth as auth

__all__ = [
    "browser_routes",
    "gpc_route",
    "keep_alive_route",
    "locked_session",
    "refused",
    "require_level",
    "require_recent_auth",
    "require_user",
    "static_route",
]

Endpoint = Callable[[Request], Awaitable[Response]]
E = TypeVar("E", bound=Endpoint)


def _session(request: Request) -> Session:
    session = request.scope.get("session")
    if not isinstance(session, Session):
        raise RuntimeError("coatcheck.asgi.SessionMiddleware must wrap this app")
    return session


def _now(request: Request) -> float:
    manager = request.scope.get(MANAGER_SCOPE_KEY)
    if not isinstance(manager, SessionManager):
        raise RuntimeError("coatcheck.asgi.SessionMiddleware must wrap this app")
    return manager.clock()


def refused(problem: auth.AuthProblem) -> Response:
    """The 401 for ``problem``."""
    return JSONResponse(problem.body(), status_code=401, headers={"Cache-Control": "no-store"})


def _guard(check: Callable[[Request], auth.AuthProblem | None]) -> Callable[[E], E]:
    def decorator(endpoint: E) -> E:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            problem = check(request)
            if problem is not None:
                return refused(problem)
            return await endpoint(request)

        return guarded  # type: ignore[return-value]

    return decorator


def require_user(endpoint: E) -> E:
    """The endpoint runs only for a logged-in session (401 ``login_required``)."""
    return _guard(lambda request: auth.login_problem(_session(request)))(endpoint)


def require_recent_auth(max_age: float) -> Callable[[E], E]:
    """The user must have authenticated within ``max_age`` seconds (ASVS 3.7.1 / 7.5.1):
    otherwise 401 ``reauthentication_required``; the app then asks for the password again
    and calls ``session.reauthenticate()``."""
    if max_age <= 0:
        raise ValueError(f"max_age must be positive, got {max_age!r}")
    return _guard(
        lambda request: auth.recent_auth_problem(_session(request), max_age, _now(request))
    )


def require_level(level: int) -> Callable[[E], E]:
    """The current authentication must be of assurance ``level`` or more (step-up, ASVS
    7.5.3): otherwise 401 ``insufficient_auth_level`` with the required and current
    levels."""
    return _guard(lambda request: auth.level_problem(_session(request), level))


def locked_session(endpoint: E) -> E:
    """The endpoint's requests of one session run one at a time: it takes the session's
    lock and reads the session again under it before it runs, and the middleware frees
    the lock after the commit (or when the endpoint raised). Not had within
    ``lock_timeout``: 409 with ``Retry-After``, and the endpoint does not run. Apply it
    outermost (above ``require_user``), so the guards read the locked session."""

    @functools.wraps(endpoint)
    async def locked(request: Request) -> Response:
        refusal = await lock_route(request.scope)
        if refusal is not None:
            return Response(refusal.body, refusal.status, headers=dict(refusal.headers))
        return await endpoint(request)

    return locked  # type: ignore[return-value]


# -- the browser side ---------------------------------------------------------------------
def _response(answer: browser.Answer) -> Response:
    return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))


async def _script(request: Request) -> Response:
    return _response(browser.script_answer(request.headers.get("if-none-match")))


async def _keep_alive(request: Request) -> Response:
    return _response(browser.keep_alive(_session(request), request.method))


def static_route(path: str = browser.SCRIPT_PATH) -> Route:
    """``coatcheck.js`` at ``path`` (GET and HEAD), revalidated by its ETag."""
    return Route(path, _script, methods=["GET"], name="coatcheck.js")


def keep_alive_route(path: str = browser.KEEP_ALIVE_PATH) -> Route:
    """The keep-alive at ``path``: ``POST`` extends a signed-in session, ``GET`` reports.
    Needs ``SessionMiddleware`` around the app (which also checks the POST's CSRF token)."""
    return Route(path, _keep_alive, methods=["GET", "POST"], name="coatcheck.keep_alive")


def gpc_route(path: str = gpc.GPC_PATH, *, last_update: str = gpc.LAST_UPDATE) -> Route:
    """``/.well-known/gpc.json`` (GET and HEAD): this site honours Global Privacy Control."""
    answer = gpc.gpc_answer(last_update)  # checked now, at start-up

    async def _gpc(request: Request) -> Response:
        return _response(answer)

    return Route(path, _gpc, methods=["GET"], name="coatcheck.gpc")


def browser_routes(prefix: str = browser.PREFIX) -> list[Route]:
    """Both routes under ``prefix``: ``Starlette(routes=[*browser_routes(), ...])``, or
    ``app.router.routes.extend(browser_routes())`` (FastAPI's ``browser_router()`` too)."""
    prefix = prefix.rstrip("/")
    return [
        static_route(f"{prefix}/{browser.SCRIPT_NAME}"),
        keep_alive_route(f"{prefix}/{browser.KEEP_ALIVE_NAME}"),
    ]
