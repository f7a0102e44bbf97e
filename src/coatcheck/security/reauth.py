"""Re-authentication and step-up checks, as pure decisions every edge shares.

ASVS asks for a full, recent authentication before sensitive actions (changing an e-mail
address, a password or a second factor; a payout) and for stronger factors before the most
sensitive ones. A session records when its user authenticated (``auth_at``) and how
strongly (``auth_level``, set by ``login(..., level=n)``); these functions say whether that
suffices, and if not, why, in a form an API client can act on. Each framework edge
(``coatcheck.starlette``, ``coatcheck.fastapi``, ``coatcheck.flask``) turns a problem into
its own 401 response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coatcheck.core.session import Session

LOGIN_REQUIRED = "login_required"
REAUTHENTICATION_REQUIRED = "reauthentication_required"
INSUFFICIENT_LEVEL = "insufficient_auth_level"


@dataclass(frozen=True, slots=True)
class AuthProblem:
    """Why a request may not proceed: ``reason`` is machine-readable, ``detail`` says what
    would satisfy the check. Answered as 401 with ``body()`` as JSON."""

    reason: str
    detail: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": self.reason, **self.detail}


def login_problem(session: Session) -> AuthProblem | None:
    """Is anyone logged in?"""
    if session.user_id is None:
        return AuthProblem(LOGIN_REQUIRED)
    return None


def recent_auth_problem(session: Session, max_age: float, now: float) -> AuthProblem | None:
    """Did the user authenticate within ``max_age`` seconds of ``now``? (A session whose
    client changed under ``client_change_action="reauthenticate"`` never did.)"""
    if max_age <= 0:
        raise ValueError(f"max_age must be positive, got {max_age!r}")
    problem = login_problem(session)
    if problem is not None:
        return problem
    auth_at = session.auth_at
    if auth_at is None or now - auth_at > max_age:
        return AuthProblem(REAUTHENTICATION_REQUIRED, {"max_age": max_age})
    return None


def level_problem(session: Session, level: int) -> AuthProblem | None:
    """Is the current authentication at least of assurance ``level``?"""
    problem = login_problem(session)
    if problem is not None:
        return problem
    if session.auth_level < level:
        return AuthProblem(INSUFFICIENT_LEVEL, {"required": level, "current": session.auth_level})
    return None
