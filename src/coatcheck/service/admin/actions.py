"""What changes something: signing in and out, and revoking sessions.

Every post here has passed the CSRF check of the admin's ``SessionMiddleware`` before it
runs (a form without the session's token is a 403 that changes nothing). Revocations are
destructive, so they also need a recent authentication (``auth.needs_key_again``): when
the last one is older than ``auth.REAUTH_AFTER``, the page asks for the key again and
repeats the action with it.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from coatcheck.service.admin import auth, pages
from coatcheck.service.admin.web import (
    NOTICE,
    PREFIX,
    admin_only,
    admin_state,
    form_field,
    page,
    see_other,
    session_of,
)
from coatcheck.service.api import HANDLE_PATTERN
from coatcheck.service.apikeys import MAX_PRESENTED, ApiKey

WRONG_KEY = "That is not an admin API key."


async def sign_in_page(request: Request) -> Response:
    """The sign-in form. Rendering it gives the visitor a session (its CSRF secret): a
    sign-in form without a token would let another site sign a browser in."""
    state = admin_state(request)
    if await auth.admin_of(session_of(request), state.service.keys) is not None:
        return see_other(PREFIX)
    return page(request, "signin.html", error=None)


async def sign_in(request: Request) -> Response:
    """Exchange an admin API key for an admin session."""
    presented = await form_field(request, "key", MAX_PRESENTED)
    key = await admin_state(request).service.keys.authenticate(presented) if presented else None
    if key is None or not key.grants("admin"):
        return page(request, "signin.html", status=401, error=WRONG_KEY)
    auth.sign_in(session_of(request), key)
    return see_other(PREFIX)


async def sign_out(request: Request) -> Response:
    session = session_of(request)
    if not session.is_new:
        session.logout()
    return see_other(PREFIX + "/signin")


def users_page(user: str) -> str:
    return PREFIX + "/users?" + urlencode({"q": user})


async def confirmed(request: Request, key: ApiKey) -> bool:
    """Is the admin's authentication recent enough for a destructive action? When it is
    not, a right key in the form's ``key`` field makes it so (``reauthenticate``)."""
    session = session_of(request)
    if not auth.needs_key_again(session, admin_state(request).service.manager.clock()):
        return True
    presented = await form_field(request, "key", MAX_PRESENTED)
    if not presented:
        return False
    again = await admin_state(request).service.keys.authenticate(presented)
    if again is None or again.name != key.name:
        return False
    session.reauthenticate()
    return True


def ask_key(
    request: Request, key: ApiKey, action: str, fields: dict[str, str], wrong: bool
) -> Response:
    """The page that asks for the key again before ``action`` (401)."""
    return page(
        request,
        "reauth.html",
        status=401,
        key=key,
        action=action,
        fields=fields,
        error=f"That is not the key {key.name}." if wrong else None,
        minutes=int(auth.REAUTH_AFTER // 60),
    )


@admin_only
async def revoke(request: Request, key: ApiKey) -> Response:
    """End one session, by its handle."""
    handle = await form_field(request, "handle", 64)
    user = await form_field(request, "user")
    fields = {"handle": handle, "user": user}
    if not await confirmed(request, key):
        wrong = bool(await form_field(request, "key", MAX_PRESENTED))
        return ask_key(request, key, PREFIX + "/sessions/revoke", fields, wrong)
    session = session_of(request)
    if handle and handle == session.handle:
        session.logout()  # the admin's own session: that is signing out
        return see_other(PREFIX + "/signin")
    manager = admin_state(request).service.manager
    done = bool(HANDLE_PATTERN.fullmatch(handle)) and await manager.revoke(handle)
    session[NOTICE] = f"Session {handle} revoked." if done else "That session had already ended."
    return see_other(users_page(user) if user else PREFIX + "/users")


@admin_only
async def revoke_all(request: Request, key: ApiKey) -> Response:
    """End every session of one user (this admin's own aside)."""
    user = await form_field(request, "user")
    fields = {"user": user}
    if not user or pages.user_problem(user) is not None:
        return see_other(PREFIX + "/users")
    if not await confirmed(request, key):
        wrong = bool(await form_field(request, "key", MAX_PRESENTED))
        return ask_key(request, key, PREFIX + "/users/revoke", fields, wrong)
    session = session_of(request)
    manager = admin_state(request).service.manager
    count = await manager.revoke_user(user, except_handle=session.handle)
    session[NOTICE] = f"Revoked {count} session(s) of {user}."
    return see_other(users_page(user))
