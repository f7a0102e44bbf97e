"""Sessions logged in straight through the manager, as Django's ``Client.force_login``
does: ``force_login``, ``aforce_login`` and the ``csrf_header`` a page would hand out.

The session is a real one in the app's own store, with the real token rules (only the
SHA-256 of the token is stored, the login is timestamped, the user's index is updated),
so a test that uses these helpers tests the app, not a shortcut around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coatcheck.core.session import Session
from coatcheck.engine.manager import CommitResult, SessionManager
from coatcheck.security import csrf

__all__ = ["aforce_login", "csrf_header", "force_login", "login_async", "login_sync"]


def _prepare(
    manager: SessionManager,
    session: Session,
    user_id: str | int,
    data: Mapping[str, Any] | None,
    remember: bool,
) -> str | None:
    """State the login; returns a CSRF token for the session when the check is on."""
    session.login(user_id, remember=remember)
    if data:
        session.update(data)
    if not manager.config.csrf:
        return None
    # The CSRF secret is created now (login drops any earlier one) and stored with the
    # login, so the token masked here verifies once the commit is done.
    return session.csrf_token()


def _token(result: CommitResult) -> str:
    if result.token is None:  # a login always issues one; anything else is a bug upstream
        raise RuntimeError("the login committed without issuing a token")
    return result.token


def login_sync(
    manager: SessionManager, user_id: str | int, data: Mapping[str, Any] | None, remember: bool
) -> tuple[str, str | None]:
    """A fresh session logged in and committed: (its token, a CSRF token or None)."""
    session = manager.load_sync(None)
    csrf_value = _prepare(manager, session, user_id, data, remember)
    return _token(manager.commit_sync(session)), csrf_value


async def login_async(
    manager: SessionManager, user_id: str | int, data: Mapping[str, Any] | None, remember: bool
) -> tuple[str, str | None]:
    """``login_sync`` through the manager's async path."""
    session = await manager.load(None)
    csrf_value = _prepare(manager, session, user_id, data, remember)
    return _token(await manager.commit(session)), csrf_value


def force_login(
    manager: SessionManager,
    user_id: str | int,
    *,
    data: Mapping[str, Any] | None = None,
    remember: bool = False,
) -> str:
    """Create a session logged in as ``user_id`` holding ``data``; return its token.

    Sent as the session cookie (or ``Authorization: Bearer``), the token makes any client
    that user, without a login form. ``remember`` gives a remember-me login. A cookie
    client's unsafe requests (POST, ...) also need a CSRF token: ``csrf_header``.
    """
    return login_sync(manager, user_id, data, remember)[0]


async def aforce_login(
    manager: SessionManager,
    user_id: str | int,
    *,
    data: Mapping[str, Any] | None = None,
    remember: bool = False,
) -> str:
    """``force_login`` through the manager's async path (async stores, async tests)."""
    return (await login_async(manager, user_id, data, remember))[0]


def csrf_header(manager: SessionManager, token: str) -> dict[str, str]:
    """``{"X-CSRF-Token": ...}`` (the name is ``SessionConfig.csrf_header``) for the
    session ``token`` names, as a page would hand it to its JavaScript: with it, a cookie
    client's POST, PUT, PATCH and DELETE pass coatcheck's CSRF check. It stays valid until
    the session logs in again or ends.

    Sessions made by ``force_login`` already hold their CSRF secret, so this writes
    nothing; for any other session the secret is created and stored now.
    """
    session = manager.load_sync(token)
    if session.is_new:
        raise ValueError("no live session has this token")
    had_secret = csrf.SECRET_KEY in session.meta
    value = session.csrf_token()
    if not had_secret:
        result = manager.commit_sync(session)
        if result.token is not None:  # a client-side store re-sealed the session
            raise ValueError(
                "this session had no CSRF secret and its cookie had to change to store "
                "one: log in with force_login, whose sessions hold one from the start"
            )
    return {manager.config.csrf_header: value}
