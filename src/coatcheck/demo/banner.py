"""The consent banner of the demo and the choices page behind it.

The banner sits on every page while ``session.consent.needs_prompt`` (no choice yet, one
made under an older policy revision, or only the browser's Global Privacy Control signal
answered). Its three answers are plain forms posting to ``/consent`` with the CSRF field:
"Accept all", "Reject all", and "Choose" (a ``<details>`` that opens a form with one
checkbox per category, ``necessary`` shown on and disabled), so it works without
JavaScript. A visitor with no stored session has no CSRF secret yet, and minting one on a
plain visit would store a session, so their banner links to the choices page
(``/consent``) instead: opening it is the visitor's own step, as opening the sign-in page
is. When the session honoured ``Sec-GPC: 1`` the banner says so, and "Accept all" leaves
analytics and marketing off (only ticking them is a grant).
"""

from __future__ import annotations

from coatcheck.core.consent import ANALYTICS, FUNCTIONAL, MARKETING, NECESSARY
from coatcheck.core.session import Session
from coatcheck.demo.forms import button, csrf_field, e

__all__ = ["CATEGORY_TEXT", "GPC_NOTE", "allowed_categories", "banner", "choices", "footer"]

CATEGORY_TEXT = {
    NECESSARY: "Necessary (always on): the session cookie that keeps your cart and sign-in.",
    FUNCTIONAL: "Functional: coatcheck.js may keep your preferences in this browser's storage.",
    ANALYTICS: "Analytics: this shop counts the pages you view.",
    MARKETING: "Marketing: none in this demo; asked so a refusal can be seen recorded.",
}
"""What each category covers, as the banner and the privacy page say it."""

GPC_NOTE = (
    "Your browser's Global Privacy Control signal is respected: analytics and marketing stay off."
)


def allowed_categories(session: Session) -> list[str]:
    """The categories this visitor allows besides ``necessary`` (what the page tells
    ``coatcheck.js`` in ``data-coatcheck-consent``)."""
    state = session.consent.state
    if state is None:
        return []
    return [c for c in session.consent.policy.categories if c != NECESSARY and state.allows(c)]


def gpc_honoured(session: Session) -> bool:
    state = session.consent.state
    return state is not None and state.gpc


def _checkbox(session: Session, category: str) -> str:
    text = e(CATEGORY_TEXT.get(category, category))
    if category == NECESSARY:
        return f"<label class=check><input type=checkbox checked disabled> {text}</label>"
    on = " checked" if session.consent.allows(category) else ""
    return (
        f'<label class=check><input type=checkbox name="{e(category)}" value=1{on}> {text}</label>'
    )


def choices(session: Session, *, opened: bool = False) -> str:
    """The three answers, as forms with the CSRF field (the session must be stored, or
    about to be: the caller decides)."""
    boxes = "".join(_checkbox(session, c) for c in session.consent.policy.categories)
    accept = button(session, "/consent", "Accept all", [("choice", "accept_all")])
    reject = button(session, "/consent", "Reject all", [("choice", "reject_all")], css="quiet")
    return (
        f"<p class=actions>{accept} {reject}</p>"
        f"<details{' open' if opened else ''}><summary>Choose</summary>"
        f'<form class=stack method=post action="/consent">{csrf_field(session)}'
        "<input type=hidden name=choice value=custom>"
        f"<fieldset><legend>Categories</legend>{boxes}</fieldset>"
        "<div><button>Save my choices</button></div></form></details>"
    )


def _intro(session: Session) -> str:
    gpc = f"<p class=notice role=status>{e(GPC_NOTE)}</p>" if gpc_honoured(session) else ""
    return (
        "<h2 id=consent-title>Cookies and privacy</h2>"
        "<p>This shop needs one cookie to work (your session). With your consent it would "
        "also use the categories below; nothing but the necessary one is on until you "
        f"say so.</p>{gpc}"
    )


def banner(session: Session) -> str:
    """The banner, or nothing once the visitor has answered."""
    if not session.consent.needs_prompt:
        return ""
    if session.is_new:
        answers = (
            '<p><a href="/consent">Make your choice</a> (accept all, reject all, or choose)</p>'
        )
    else:
        answers = choices(session)
    return (
        f"<aside id=consent class=banner aria-labelledby=consent-title>{_intro(session)}"
        f"{answers}</aside>"
    )


def consent_page_body(session: Session) -> str:
    """The choices page: the banner's content, open, with the choice in force."""
    state = session.consent.state
    if state is None or state.method == "gpc":  # only the GPC signal answered
        now = "You have not chosen yet."
    else:
        on = ", ".join(allowed_categories(session)) or "none but necessary"
        now = f"Your choice ({e(state.method.replace('_', ' '))}): {e(on)}."
    return (
        f"<section id=consent aria-labelledby=consent-title>{_intro(session)}"
        f"<p>{now}</p>{choices(session, opened=True)}</section>"
    )


def footer() -> str:
    return (
        '<footer><nav aria-label="Privacy"><a href="/privacy">Privacy</a> '
        '<a href="/consent">Privacy choices</a></nav></footer>'
    )
