"""Server-rendered HTML of the demo: plain strings, no template engine, no inline script.
Every page works without JavaScript; ``coatcheck.js`` (loaded by ``layout``) improves it
where present: the CSRF header on scripted requests, an idle warning, tabs in step.

Everything that came from a client (user agents, handles, form values echoed back, even
the fixed usernames stored in a session) goes through ``html.escape`` here, in one place,
so a page cannot be turned into a script injection by a crafted User-Agent header.

Every form carries a ``csrf_token`` field, a token masked afresh for each form (so two
forms of one page differ), which the session middleware checks before any handler runs.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from coatcheck.core.config import SessionConfig
from coatcheck.core.session import Session
from coatcheck.demo.shop import PRODUCTS, USERS
from coatcheck.engine.results import SessionInfo

CSS = """
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
header { display: flex; justify-content: space-between; align-items: baseline;
         border-bottom: 1px solid #ddd; margin-bottom: 1rem; }
section { border: 1px solid #ddd; border-radius: 6px; padding: .5rem 1rem; margin: 1rem 0; }
form.inline { display: inline; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
td, th { border-bottom: 1px solid #eee; padding: .3rem; text-align: left; vertical-align: top; }
code { background: #f4f4f4; padding: 0 .2rem; }
.error { background: #fde8e8; border-color: #e99; }
.this { font-weight: bold; color: #176; }
.muted { color: #666; font-size: .9rem; }
"""


def e(value: object) -> str:
    """Escape any value for HTML text and attribute context."""
    return html.escape(str(value), quote=True)


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    """A rough human duration: ``45 s``, ``12 min``, ``3 h``, ``30 days``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 2 * 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


def layout(title: str, body: str, session: Session) -> str:
    user = session.user_id
    who = f"logged in as <b>{e(user)}</b>" if user is not None else "anonymous visitor"
    nav = '<a href="/">Shop</a>'
    if user is not None:
        nav += ' · <a href="/sessions">Your devices</a>'
    # A visitor with no stored session has no CSRF secret yet, and minting one here would
    # store a session on a plain visit; /start begins it.
    csrf = "" if session.is_new else f'<meta name=csrf-token content="{e(session.csrf_token())}">'
    return (
        f'<!doctype html>\n<html lang=en data-coatcheck-user="{e(user or "")}">'
        "<head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"{csrf}"
        '<script type=module src="/coatcheck/coatcheck.js"></script>'
        f"<title>{e(title)} · coatcheck demo</title><style>{CSS}</style></head><body>"
        f"<header><h1>coatcheck demo shop</h1><span>{nav} · {who}</span></header>"
        f"{body}</body></html>\n"
    )


def _csrf_field(session: Session) -> str:
    """The hidden field that proves a form came from one of this site's own pages."""
    return f'<input type=hidden name="csrf_token" value="{e(session.csrf_token())}">'


def _button(
    session: Session, action: str, label: str, fields: Iterable[tuple[str, str]] = ()
) -> str:
    hidden = _csrf_field(session) + "".join(
        f'<input type=hidden name="{e(k)}" value="{e(v)}">' for k, v in fields
    )
    return (
        f'<form class=inline method=post action="{e(action)}">{hidden}'
        f"<button>{e(label)}</button></form>"
    )


def _cart(session: Session) -> str:
    items = session.get("cart", [])
    counts = Counter(str(item) for item in items)
    if counts:
        rows = "".join(
            f"<li>{e(PRODUCTS.get(item, item))} &times; {count}</li>"
            for item, count in counts.items()
        )
        contents = f"<ul>{rows}</ul>{_button(session, '/cart/clear', 'Empty the cart')}"
    else:
        contents = "<p>Your cart is empty.</p>"
    options = "".join(
        f'<option value="{e(pid)}">{e(name)}</option>' for pid, name in PRODUCTS.items()
    )
    add = (
        f'<form method=post action="/cart/add">{_csrf_field(session)}<select name=item>'
        f"{options}</select> <button>Add to cart</button></form>"
    )
    return f"<section><h2>Cart</h2>{contents}{add}</section>"


def _account(session: Session, error: str | None) -> str:
    if session.user_id is not None:
        how = (
            "remember-me (persistent cookie)" if session.remember else "until you close the browser"
        )
        return (
            f"<section><h2>Account</h2><p>Logged in as <b>{e(session.user_id)}</b> "
            f"({e(how)}), authenticated at {e(when(session.auth_at))}.</p>"
            f"<p>{_button(session, '/logout', 'Log out')} "
            '<a href="/sessions">See your devices</a></p>'
            "</section>"
        )
    users = ", ".join(f"<code>{e(u)}</code> / <code>{e(p)}</code>" for u, p in USERS.items())
    problem = f"<p class=error role=alert>{e(error)}</p>" if error else ""
    return (
        f"<section{' class=error' if error else ''}><h2>Log in</h2>{problem}"
        f'<form method=post action="/login">{_csrf_field(session)}'
        "<label>User <input name=username autocomplete=username required></label> "
        "<label>Password <input name=password type=password autocomplete=current-password "
        "required></label> "
        "<label><input type=checkbox name=remember value=1> Remember me</label> "
        "<button>Log in</button></form>"
        f"<p class=muted>Demo users: {users}.</p></section>"
    )


def _welcome() -> str:
    """What a visitor without a session sees instead of the forms (which need a session's
    CSRF secret): the catalogue, and the link that starts a session."""
    products = "".join(f"<li>{e(name)}</li>" for name in PRODUCTS.values())
    return (
        "<section><h2>Welcome</h2><p>You have no session yet, and looking costs the server "
        'nothing. <a href="/start">Start shopping</a> to get one: a cart, and a login '
        "form.</p></section>"
        f"<section><h2>Cart</h2><p>Your cart is empty.</p><ul>{products}</ul></section>"
    )


def _explanation(session: Session, config: SessionConfig, now: float) -> str:
    if session.handle is None:
        state = "You have no session yet: this page stored nothing and sent no cookie."
    else:
        left = duration((session.expires_at or now) - now)
        state = (
            f"Your session's public handle is <code>{e(session.handle)}</code> (safe to show: "
            f"it is not a credential). It ends in about {e(left)} unless you come back."
        )
    return (
        "<section><h2>What is happening</h2>"
        f"<p>{state}</p><ul>"
        f"<li>Your browser holds only a ticket: a random 256-bit token in the "
        f"<code>{e(config.cookie_name)}</code> cookie (Secure, HttpOnly, "
        f"SameSite={e(config.same_site.capitalize())}). The <code>__Host-</code> prefix "
        "stops other subdomains from planting or overwriting it.</li>"
        "<li>The server files your session under the token's SHA-256, never the token: a "
        "leaked database holds nothing a browser could present.</li>"
        "<li>The cart is session data on the server; each request writes only the keys "
        "it changed, and a page that only reads (like this one) writes nothing.</li>"
        "<li>Every form carries a CSRF token, masked afresh for each form; a post from "
        "another site, or without a valid token, is refused before it can change your "
        "session.</li>"
        "<li>Logging in issues a new token (no session fixation) and keeps your cart; "
        "logging out deletes the session on the server, not just the cookie.</li>"
        f"<li>Sessions end after {e(duration(config.idle_timeout))} idle or "
        f"{e(duration(config.absolute_timeout))} in total; "
        f"remember-me lasts {e(duration(config.remember_timeout))}.</li>"
        "</ul></section>"
    )


def home_page(
    session: Session, config: SessionConfig, now: float, *, error: str | None = None
) -> str:
    if session.is_new:  # no stored session: nothing here may create one
        body = _welcome() + _explanation(session, config, now)
    else:
        body = f"{_account(session, error)}{_cart(session)}{_explanation(session, config, now)}"
    return layout("Shop", body, session)


def sessions_page(session: Session, sessions: Sequence[SessionInfo], now: float) -> str:
    rows = []
    for info in sessions:
        this = info.handle == session.handle
        marker = " <span class=this>(this device)</span>" if this else ""
        label = "Log out" if this else "Revoke"
        rows.append(
            "<tr>"
            f"<td><code>{e(info.handle)}</code>{marker}</td>"
            f"<td>{e(when(info.created_at))}</td>"
            f"<td>{e(duration(now - info.last_seen_at))} ago</td>"
            f"<td>{e(info.user_agent or 'unknown')}</td>"
            f"<td>{e(info.ip or '-')}</td>"
            f"<td>{_button(session, '/sessions/revoke', label, [('handle', info.handle)])}</td>"
            "</tr>"
        )
    others = any(info.handle != session.handle for info in sessions)
    revoke_others = (
        _button(session, "/sessions/revoke-others", "Log out all other devices") if others else ""
    )
    body = (
        f"<h2>Your devices</h2><p>{len(sessions)} active session(s) for "
        f"<b>{e(session.user_id)}</b>. IP addresses are truncated before they are stored.</p>"
        "<table><thead><tr><th>Handle</th><th>Created</th><th>Last seen</th>"
        "<th>User agent</th><th>IP (truncated)</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        f"<p>{revoke_others}</p>"
    )
    return layout("Your devices", body, session)


def message_page(session: Session, title: str, message: str) -> str:
    return layout(
        title, f"<h2>{e(title)}</h2><p>{e(message)}</p><p><a href='/'>Back</a></p>", session
    )
