"""``@locked_session``: the requests of one session through a view run one at a time
(``coatcheck.engine.locking``), as PHP's and ASP.NET's do.

Flask opens the session before it matches the URL, so the session interface asks here,
before its load, whether the request goes to a marked view: it matches the URL itself,
only in apps that have a marked view. ``SessionConfig.lock_sessions`` locks every request
of a session, marked or not. The lock is freed after the commit (``save_session``), or at
the end of the request when no save came (a teardown hook of ``init_app``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import flask
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from coatcheck.engine.locking import Held, SessionLocks

if TYPE_CHECKING:
    from flask.wrappers import Request

__all__ = ["HELD_KEY", "MARK", "locked_session", "marked_endpoints", "routed_to_marked"]

F = TypeVar("F", bound=Callable[..., Any])

MARK: Final = "_coatcheck_locked_session"
"""The attribute ``@locked_session`` sets on a view."""

HELD_KEY: Final = "coatcheck.lock"
"""Where the session interface keeps the lock a request holds, in its environ."""


def locked_session(view: F) -> F:
    """Mark ``view``: its requests of one session run one at a time. A lock not had
    within ``lock_timeout`` is a 409 with ``Retry-After``, and the view does not run.
    Needs a store with ``Lockable`` (MissingCapability at the first request otherwise)."""
    setattr(view, MARK, True)
    return view


def marked_endpoints(app: flask.Flask) -> frozenset[str]:
    """The endpoints of ``app`` whose view is marked (read at its first request, after
    which Flask accepts no new views)."""
    return frozenset(name for name, view in app.view_functions.items() if getattr(view, MARK, 0))


def routed_to_marked(app: flask.Flask, request: Request, marked: frozenset[str]) -> bool:
    """Does ``request`` go to one of the ``marked`` endpoints? (A URL that matches
    nothing, or redirects, goes to none.)"""
    adapter = app.create_url_adapter(request)
    if adapter is None:
        return False
    try:
        endpoint, _ = adapter.match()
    except (HTTPException, RequestRedirect):
        return False
    return endpoint in marked


def release(locks: SessionLocks, environ: dict[str, Any]) -> None:
    """Free the lock the request holds, if any (once)."""
    held: Held | None = environ.pop(HELD_KEY, None)
    if held is not None:
        locks.release_sync(held)
