"""The consent and privacy routes of the demo: the banner's answers, the choices page,
and the privacy page (download my data, erase my account).

Export and erasure go through the deployment's ``PrivacyRegistry`` (``coatcheck serve``
passes it to ``create_app``), never through the store directly, so the download holds
what every holder keeps and the erasure reaches every holder. An erased demo user cannot
sign in again until the server restarts (the demo's user directory lives in the process,
as a changed password does); the registry's tombstone outlives the restart.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coatcheck.core.consent import NECESSARY
from coatcheck.core.session import Session
from coatcheck.demo.banner import CATEGORY_TEXT, allowed_categories, consent_page_body
from coatcheck.demo.forms import csrf_field, e, problem
from coatcheck.demo.pages import layout
from coatcheck.demo.web import accounts_of, check_password, manager_of, page, see_other, session_of
from coatcheck.errors import ConfigError
from coatcheck.http.cookies import clear_cookie
from coatcheck.http.headers import CLEAR_ALL
from coatcheck.privacy.registry import PrivacyRegistry

CHOICES = ("accept_all", "reject_all", "custom")
"""The banner's answers, by the consent method each records."""

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")


def registry_of(request: Request) -> PrivacyRegistry | None:
    registry = getattr(request.app.state, "demo_privacy", None)
    return registry if isinstance(registry, PrivacyRegistry) else None


def back_to(request: Request) -> str:
    """The page the banner was answered on (its same-origin ``Referer`` path), else the
    shop: never another site, whatever the header says."""
    referer = urlsplit(request.headers.get("referer", ""))
    own = referer.netloc == request.headers.get("host") and referer.scheme in ("http", "https")
    path = referer.path
    if own and path.startswith("/") and not path.startswith("//") and path != "/consent":
        return path
    return "/"


async def consent_page(request: Request) -> Response:
    """The choices page (the footer's "Privacy choices"): asking to choose is the
    visitor's step, so a visitor without a session gets one here, for the CSRF field."""
    session = session_of(request)
    return page(layout("Privacy choices", consent_page_body(session), session, prompt=False))


async def decide(request: Request) -> Response:
    """Record the banner's answer (the middleware checked the CSRF field already)."""
    session = session_of(request)
    form = await request.form()
    choice = form.get("choice")
    if choice == "accept_all":
        session.consent.accept_all()
    elif choice == "reject_all":
        session.consent.reject_all()
    elif choice == "custom":
        others = [c for c in session.consent.policy.categories if c != NECESSARY]
        session.consent.set({c: form.get(c) is not None for c in others}, method="custom")
    else:
        body = "<h2>Unknown choice</h2><p>Pick one of the banner's buttons.</p>"
        return page(layout("Unknown choice", body, session, prompt=False), 400)
    return see_other(back_to(request))


def _kept(session: Session) -> str:
    rows = "".join(
        f"<li>{e(text)} {'(allowed)' if session.consent.allows(c) else '(off)'}</li>"
        for c, text in CATEGORY_TEXT.items()
    )
    on = ", ".join(allowed_categories(session)) or "none but necessary"
    return (
        "<section aria-labelledby=kept><h2 id=kept>What this shop keeps</h2>"
        "<p>Your session (a random token in an HttpOnly cookie; the server keeps only its "
        "hash), your cart, and, once you sign in, your devices (browser family and a "
        "truncated IP address), your sign-in history and your consent choices.</p>"
        f"<ul>{rows}</ul><p>Your consent: {e(on)}. "
        '<a href="/consent">Change your privacy choices</a></p></section>'
    )


def _rights(session: Session, error: str | None) -> str:
    return (
        "<section aria-labelledby=rights><h2 id=rights>Your data</h2>"
        '<form method=get action="/privacy/export"><button>Download my data</button></form>'
        "<p class=muted>One JSON file with everything this shop keeps about you.</p>"
        f"{problem(error)}"
        f'<form class=stack method=post action="/privacy/erase">{csrf_field(session)}'
        "<label>Password <input name=password type=password autocomplete=current-password "
        "required></label>"
        "<div><button class=danger>Erase my account</button></div></form>"
        "<p class=muted>Erasing signs you out everywhere and deletes your sessions, history "
        "and consent records; only a tombstone without personal data stays.</p></section>"
    )


def privacy_body(session: Session, error: str | None = None) -> str:
    rights = _rights(session, error) if session.user_id is not None else ""
    return _kept(session) + rights


async def privacy(request: Request) -> Response:
    """What is kept, the consent in force, and (signed in) the two rights. It only reads:
    a visitor without a session gets none here."""
    session = session_of(request)
    return page(layout("Privacy", privacy_body(session), session))


async def export(request: Request) -> Response:
    """The signed-in user's export from the registry, as a download."""
    session = session_of(request)
    if session.user_id is None:
        return see_other("/login")
    registry = registry_of(request)
    if registry is None:
        return _unavailable(session)
    document = await registry.export(session.user_id)
    name = _SAFE_NAME.sub("_", session.user_id)
    return Response(
        json.dumps(document, indent=2, sort_keys=True),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="coatcheck-data-{name}.json"',
            "Cache-Control": "no-store",
        },
    )


async def erase(request: Request) -> Response:
    """Erase the signed-in user after their password: every holder through the registry,
    then the demo's own account (refused at sign-in until a restart)."""
    session = session_of(request)
    user = session.user_id
    if user is None:
        return see_other("/login")
    registry = registry_of(request)
    if registry is None:
        return _unavailable(session)
    password = (await request.form()).get("password")
    if not isinstance(password, str) or not await check_password(request, user, password):
        wrong = "That password is wrong: your account is not erased."
        return page(layout("Privacy", privacy_body(session, wrong), session), 401)
    try:
        await registry.erase(user)  # revokes every session of the user, this one included
    except ConfigError:  # no tombstone secret or database: refused before anything went
        return _unavailable(session, "Erasure is not set up on this server.")
    accounts_of(request).remove(user)
    # Not session.logout(): its commit would record a logout of the erased user in the
    # activity log, personal data written after the erasure. The record is gone already;
    # the browser is told to drop its cookie and what this site kept in it.
    answer = see_other("/privacy/erased")
    answer.headers.append("set-cookie", clear_cookie(manager_of(request).config))
    if manager_of(request).config.clear_site_data:
        answer.headers["clear-site-data"] = CLEAR_ALL
    return answer


async def erased(request: Request) -> Response:
    session = session_of(request)
    body = (
        "<section role=status><h2>Your account is erased</h2><p>You are signed out, your "
        "sessions, history and consent records are deleted, and this demo refuses that "
        "username until the server restarts.</p><p><a href='/'>Back to the shop</a></p>"
        "</section>"
    )
    return page(layout("Account erased", body, session))


def _unavailable(session: Session, why: str = "") -> Response:
    why = why or "This server runs the shop without a privacy registry."
    body = f"<h2>Not available here</h2><p>{e(why)}</p>"
    return page(layout("Not available", body, session), 503)


ROUTES = [
    Route("/consent", consent_page, methods=["GET"]),
    Route("/consent", decide, methods=["POST"]),
    Route("/privacy", privacy, methods=["GET"]),
    Route("/privacy/export", export, methods=["GET", "POST"]),
    Route("/privacy/erase", erase, methods=["POST"]),
    Route("/privacy/erased", erased, methods=["GET"]),
]
