"""A user's sessions, listed and revoked: what Django's session framework cannot do.

Django finds a session only by its key, so "sign out my other devices" needs a scan of the
whole table. coatcheck files each record under its user (``_auth_user_id`` is mirrored into
the record at login), so both are one indexed store call.
"""

from __future__ import annotations

from django.http import HttpRequest

from coatcheck.core.record import UserId
from coatcheck.engine.results import SessionInfo
from coatcheck.integrations.django.conf import get_manager
from coatcheck.integrations.django.store import AUTH_USER_KEY, SessionStore


def user_sessions(user_id: UserId) -> list[SessionInfo]:
    """The user's live sessions, oldest first (handles, devices, times; no credentials).
    ``user_id`` None (``request.user.pk`` of an anonymous visitor) raises
    ``InvalidUserId``."""
    return get_manager().list_user_sessions_sync(user_id)


def revoke_other_sessions(request: HttpRequest) -> int:
    """End every session of the request's user except this one; returns how many ended.

    Call it after ``update_session_auth_hash`` in a password-change view: Django itself
    only stops the other sessions lazily, when each next presents its stale auth hash.
    """
    user_id = request.session.get(AUTH_USER_KEY)
    if user_id is None:
        return 0
    session = request.session
    keep = session.handle if isinstance(session, SessionStore) else None
    return get_manager().revoke_user_sync(str(user_id), except_handle=keep)


async def arevoke_other_sessions(request: HttpRequest) -> int:
    """``revoke_other_sessions`` for async views."""
    user_id = await request.session.aget(AUTH_USER_KEY)
    if user_id is None:
        return 0
    session = request.session
    keep = await session.ahandle() if isinstance(session, SessionStore) else None
    return await get_manager().revoke_user(str(user_id), except_handle=keep)
