"""Guards for Starlette endpoints: ``@require_user``, ``@require_recent_auth(300)``,
``@require_level(2)``.

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

from coatcheck.core.session import Session
from coatcheck.engine.manager import SessionManager
from coatcheck.integrations.asgi import MANAGER_SCOPE_KEY
from coatcheck.security import reauth as auth

__all__ = [
    "refused",
    "require_level",
    "require_recent_auth",
    "require_user",
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
