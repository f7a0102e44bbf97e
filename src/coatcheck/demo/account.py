"""The account routes of the demo: the page, revoking devices, changing the password and
the e-mail address.

Each handler checks who is signed in first (an anonymous visitor is sent to sign in), and
every change that needs a password checks it with argon2id in a worker thread. Revocation
and "sign out everywhere else" go through the same manager the middleware uses; the
session of this request only states intents, which the middleware commits.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coatcheck.core.session import Session
from coatcheck.demo.account_pages import REAUTH_AFTER, AccountView, account_page
from coatcheck.demo.shop import email_problem, password_problem
from coatcheck.demo.web import (
    accounts_of,
    check_password,
    form_field,
    manager_of,
    page,
    see_other,
    session_of,
)
from coatcheck.security.reauth import recent_auth_problem

NOTICE_KEY = "notice"
"""Session key of a one-time message for the next account page ("Password changed.")."""


async def render(request: Request, status: int = 200, **outcome: str | None) -> Response:
    """The account page of the signed-in user, with the outcome of a form if any."""
    manager = manager_of(request)
    session = session_of(request)
    assert session.user_id is not None
    view = AccountView(
        email=accounts_of(request).email_of(session.user_id) or "-",
        devices=await manager.list_user_sessions(session.user_id),
        now=manager.clock(),
        notice=session.pop(NOTICE_KEY, None) if status == 200 else None,
        **outcome,
    )
    return page(account_page(session, view), status)


def signed_in(request: Request) -> Session | None:
    session = session_of(request)
    return session if session.user_id is not None else None


async def account(request: Request) -> Response:
    if signed_in(request) is None:
        return see_other("/login")
    return await render(request)


async def revoke(request: Request) -> Response:
    manager = manager_of(request)
    session = signed_in(request)
    if session is None or session.user_id is None:
        return see_other("/login")
    handle = await form_field(request, "handle")
    if handle is not None and handle == session.handle:
        session.logout()  # deletes the record and clears this browser's cookie
        return see_other("/")
    # Only handles of this user's own sessions: a handle is public (it appears in
    # logs and on pages), so knowing one must not let anyone end someone else's session.
    owned = {info.handle for info in await manager.list_user_sessions(session.user_id)}
    if handle in owned:
        await manager.revoke(handle)
        session[NOTICE_KEY] = "That device is signed out."
    return see_other("/account")


async def revoke_others(request: Request) -> Response:
    session = signed_in(request)
    if session is None or session.user_id is None:
        return see_other("/login")
    count = await manager_of(request).revoke_user(session.user_id, except_handle=session.handle)
    session[NOTICE_KEY] = f"Signed out {count} other session(s)."
    return see_other("/account")


async def change_password(request: Request) -> Response:
    """A new password ends every other session (whoever knew the old one is out) and gives
    this one a new token and a fresh authentication time."""
    session = signed_in(request)
    if session is None or session.user_id is None:
        return see_other("/login")
    form = await request.form()
    current, new, confirm = (
        str(form.get(k) or "") for k in ("current_password", "new_password", "confirm_password")
    )
    if not await check_password(request, session.user_id, current):
        wrong = "Your current password is wrong."
        return await render(request, 401, password_error=wrong)
    error = password_problem(new, confirm)
    if error is not None:
        return await render(request, 400, password_error=error)
    await run_in_threadpool(accounts_of(request).set_password, session.user_id, new)
    manager = manager_of(request)
    ended = await manager.revoke_user(session.user_id, except_handle=session.handle)
    session.reauthenticate()
    session[NOTICE_KEY] = f"Password changed; {ended} other session(s) signed out."
    return see_other("/account")


async def change_email(request: Request) -> Response:
    """A sensitive action: when the last authentication is older than ``REAUTH_AFTER``
    (``recent_auth_problem``), the password must come with it, and a right one counts as
    a fresh authentication (``session.reauthenticate``: new token, new ``auth_at``)."""
    session = signed_in(request)
    if session is None or session.user_id is None:
        return see_other("/login")
    form = await request.form()
    email = str(form.get("email") or "").strip()
    password = form.get("password")
    stale = recent_auth_problem(session, REAUTH_AFTER, manager_of(request).clock())
    if stale is not None:
        asked = "Enter your password again to change your e-mail address."
        if not isinstance(password, str) or not password:
            return await render(request, 401, email_error=asked, email_value=email)
        if not await check_password(request, session.user_id, password):
            wrong = "That password is wrong."
            return await render(request, 401, email_error=wrong, email_value=email)
    invalid = email_problem(email)
    if invalid is not None:
        return await render(request, 400, email_error=invalid, email_value=email)
    if stale is not None:
        session.reauthenticate()
    accounts_of(request).set_email(session.user_id, email)
    session[NOTICE_KEY] = f"Your e-mail address is now {email}."
    return see_other("/account")


ROUTES = [
    Route("/account", account, methods=["GET"]),
    Route("/account/devices/revoke", revoke, methods=["POST"]),
    Route("/account/devices/revoke-others", revoke_others, methods=["POST"]),
    Route("/account/password", change_password, methods=["POST"]),
    Route("/account/email", change_email, methods=["POST"]),
]
