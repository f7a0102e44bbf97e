"""``@locked_session``: the requests of one session through a view run one at a time
(``coatcheck.engine.locking``), as PHP's and ASP.NET's do; ``COATCHECK_CONFIG =
{"lock_sessions": True}`` locks every request of a session instead.

Django loads its session lazily, at the first access. The decorator takes the lock before
the view runs and makes the session be read again under it (a middleware that looked at it
earlier read it unlocked); ``coatcheck.django.SessionMiddleware`` frees the lock once the
session is saved, in its ``process_response``, which Django runs even when the view raised
(its exception has become a response by then). A lock not had within ``lock_timeout`` is a
409 with ``Retry-After``, and the view does not run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, TypeVar

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from coatcheck.engine.locking import Held, session_locks
from coatcheck.http.refusals import REFUSED, refused
from coatcheck.integrations.django.conf import get_manager
from coatcheck.integrations.django.store import SessionStore

__all__ = ["HELD_ATTR", "SEEN_ATTR", "locked_session", "release_lock", "take_lock"]

F = TypeVar("F", bound=Callable[..., Any])

HELD_ATTR: Final = "_coatcheck_lock"
"""The request attribute that holds the session lock a request took (a ``Held``)."""

SEEN_ATTR: Final = "_coatcheck_lockable"
"""Set by ``coatcheck.django.SessionMiddleware``: only it frees the lock after the save."""


def _refusal(exc: Exception) -> HttpResponse:
    answer = refused(exc, "load")  # type: ignore[arg-type]
    response = HttpResponse(answer.body, status=answer.status)
    for name, value in answer.headers:
        response[name] = value
    return response


def _session(request: HttpRequest) -> SessionStore | None:
    """The request's coatcheck session, when there is one worth locking (it has a key)."""
    if not getattr(request, SEEN_ATTR, False):
        raise ImproperlyConfigured(
            "@locked_session needs coatcheck.django.SessionMiddleware in MIDDLEWARE (it frees "
            "the lock once the session is saved)"
        )
    session = getattr(request, "session", None)
    if not isinstance(session, SessionStore) or getattr(request, HELD_ATTR, None) is not None:
        return None  # another engine, or locked already (lock_sessions)
    if session.session_key is None:
        return None  # a new session: no other request to wait for
    return session


def _read_again(session: SessionStore) -> None:
    """Drop what a middleware may have read before the lock: the view reads the store."""
    session.__dict__.pop("_session_cache", None)


def take_lock(request: HttpRequest) -> HttpResponse | None:
    """Take the session's lock (sync); the refusal to answer instead, if it is not had."""
    session = _session(request)
    if session is None:
        return None
    try:
        held = session_locks(get_manager()).acquire_sync(session.session_key)
    except REFUSED as exc:
        return _refusal(exc)
    setattr(request, HELD_ATTR, held)
    _read_again(session)
    return None


async def atake_lock(request: HttpRequest) -> HttpResponse | None:
    """``take_lock`` for an async view (the wait is ``asyncio.sleep``)."""
    session = _session(request)
    if session is None:
        return None
    try:
        held = await session_locks(get_manager()).acquire(session.session_key)
    except REFUSED as exc:
        return _refusal(exc)
    setattr(request, HELD_ATTR, held)
    _read_again(session)
    return None


def release_lock(request: HttpRequest) -> None:
    """Free the lock the request holds, if any (after the save)."""
    held: Held | None = getattr(request, HELD_ATTR, None)
    if held is not None:
        setattr(request, HELD_ATTR, None)
        session_locks(get_manager()).release_sync(held)


def locked_session(view: F) -> F:
    """Mark a view (sync or async): its requests of one session run one at a time."""
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def alocked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            refusal = await atake_lock(request)
            if refusal is not None:
                return refusal
            return await view(request, *args, **kwargs)

        return alocked  # type: ignore[return-value]

    @functools.wraps(view)
    def locked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        refusal = take_lock(request)
        if refusal is not None:
            return refusal
        return view(request, *args, **kwargs)

    return locked  # type: ignore[return-value]
