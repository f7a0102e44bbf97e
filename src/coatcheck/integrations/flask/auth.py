"""Flask view decorators for authentication: ``@login_required``, ``@require_recent_auth``,
``@require_level``.

The checks are ``coatcheck.security.reauth``'s, shared with the Starlette and FastAPI
edges, and a failed one is the same 401 JSON body everywhere (``{"error":
"reauthentication_required", "max_age": 300}``), so a front end handles every edge alike.
The exception is the one ``coatcheck.errors.AuthenticationRequired`` of every edge, here
also werkzeug's ``Unauthorized`` so that Flask answers it and an app's
``errorhandler(401)`` may restyle it (say, redirect browsers to its login form).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

import flask
from werkzeug.exceptions import Unauthorized

from coatcheck import errors
from coatcheck.integrations.flask.session import FlaskSession
from coatcheck.integrations.flask.session_interface import (
    current_session,
    installed_interface,
)
from coatcheck.security import reauth as auth

__all__ = ["AuthenticationRequired", "login_required", "require_level", "require_recent_auth"]

F = TypeVar("F", bound=Callable[..., Any])


class AuthenticationRequired(errors.AuthenticationRequired, Unauthorized):
    """401 from ``login_required`` / ``require_recent_auth`` / ``require_level``.
    ``reason`` is machine-readable (``login_required``, ``reauthentication_required``,
    ``insufficient_auth_level``), ``detail`` what would satisfy the check; ``problem`` is
    the ``coatcheck.security.reauth.AuthProblem`` both come from."""

    def __init__(self, reason: str, **detail: Any) -> None:
        # Cooperative: errors.AuthenticationRequired passes the message on to
        # Unauthorized as its description.
        super().__init__(auth.AuthProblem(reason, dict(detail)), reason)
        self.reason = reason
        self.detail = detail
        body = json.dumps({"error": reason, **detail})
        self.response = flask.current_app.response_class(
            body, status=401, mimetype="application/json", headers={"Cache-Control": "no-store"}
        )


def _guard(view: F, check: Callable[[], object]) -> F:
    """Wrap a sync or async view so that ``check`` runs first."""
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            check()
            return await view(*args, **kwargs)

        return cast(F, async_wrapper)

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def _require_login() -> FlaskSession:
    session = current_session()
    if not session.is_authenticated:
        raise AuthenticationRequired(auth.LOGIN_REQUIRED)
    return session


def login_required(view: F) -> F:
    """``@login_required``: 401 ``{"error": "login_required"}`` unless logged in."""
    return _guard(view, _require_login)


def _raise(problem: auth.AuthProblem | None) -> None:
    if problem is not None:
        raise AuthenticationRequired(problem.reason, **problem.detail)


def require_recent_auth(max_age: float) -> Callable[[F], F]:
    """``@require_recent_auth(300)``: the user must have logged in (or re-authenticated)
    within ``max_age`` seconds, as sensitive actions like a password or e-mail change
    should require (ASVS). Otherwise 401 ``{"error": "reauthentication_required",
    "max_age": ...}``, or ``login_required`` when not logged in at all."""
    if max_age <= 0:
        raise ValueError(f"max_age must be positive, got {max_age!r}")

    def check() -> None:
        core = current_session().core
        _raise(auth.recent_auth_problem(core, max_age, installed_interface().manager.clock()))

    def decorator(view: F) -> F:
        return _guard(view, check)

    return decorator


def require_level(level: int) -> Callable[[F], F]:
    """``@require_level(2)``: the current authentication must be of assurance ``level`` or
    more (step-up); otherwise 401 ``{"error": "insufficient_auth_level", ...}``."""

    def check() -> None:
        _raise(auth.level_problem(current_session().core, level))

    def decorator(view: F) -> F:
        return _guard(view, check)

    return decorator
