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

from collections import Counter
from datetime import UTC, datetime

from coatcheck.core.config import SessionConfig
from coatcheck.core.session import Session
from coatcheck.demo.banner import allowed_categories, banner, footer
from coatcheck.demo.forms import button, csrf_field, e, problem
from coatcheck.demo.shop import DEMO_USERS, PRODUCTS

CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d8dee4; --accent: #1a6b5a;
        --bad: #a4262c; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 0 auto; padding: 0 1rem 2rem;
       color: var(--ink); line-height: 1.45; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; justify-content: space-between;
         align-items: center; border-bottom: 1px solid var(--line); padding: .75rem 0;
         margin-bottom: 1rem; }
header h1 { font-size: 1.2rem; margin: 0; }
nav a { margin-right: .75rem; }
a { color: var(--accent); }
h2 { font-size: 1.1rem; margin: .25rem 0 .5rem; }
section { border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem;
          margin: 1rem 0; }
form.inline { display: inline; }
form.stack { display: grid; gap: .6rem; max-width: 24rem; }
form.stack label { display: grid; gap: .15rem; font-weight: 600; font-size: .95rem; }
form.stack label.check { display: flex; gap: .4rem; font-weight: normal; align-items: center; }
input:not([type=checkbox]), select { font: inherit; padding: .35rem .5rem;
       border: 1px solid #afb8c1; border-radius: 6px; }
button { font: inherit; padding: .35rem .9rem; border-radius: 6px; cursor: pointer;
         border: 1px solid var(--accent); background: var(--accent); color: #fff; }
button.quiet { background: #fff; color: var(--accent); }
button.danger { background: #fff; color: var(--bad); border-color: var(--bad); }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
td, th { border-bottom: 1px solid var(--line); padding: .4rem .3rem; text-align: left;
         vertical-align: middle; }
tr.this { background: #eef7f4; }
code { background: var(--soft); padding: 0 .2rem; border-radius: 3px; }
.error { background: #fdeeee; border-color: #e3a5a8; }
p.error { padding: .4rem .6rem; border: 1px solid #e3a5a8; border-radius: 6px; }
.notice { background: #eef7f4; padding: .4rem .6rem; border: 1px solid #9fd1c3;
          border-radius: 6px; }
.this-device { font-weight: 600; color: var(--accent); }
.muted { color: var(--muted); font-size: .9rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(20rem, 1fr)); gap: 0 1rem; }
aside.banner { border: 2px solid var(--accent); border-radius: 8px; padding: .75rem 1rem;
               margin: 1rem 0; background: #f3faf7; }
details { margin-top: .5rem; }
summary { cursor: pointer; color: var(--accent); font-weight: 600; }
fieldset { border: 1px solid var(--line); border-radius: 6px; display: grid; gap: .4rem; }
footer { border-top: 1px solid var(--line); margin-top: 2rem; padding-top: .75rem; }
footer a { margin-right: .75rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden;
                   clip: rect(0 0 0 0); white-space: nowrap; }
"""


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


def layout(title: str, body: str, session: Session, *, prompt: bool = True) -> str:
    """A whole page: the header, ``body``, the consent banner while the visitor has not
    answered (``prompt=False`` on the choices page itself) and the privacy footer. The
    ``<html>`` element tells ``coatcheck.js`` who is signed in and what they consented to
    (``data-coatcheck-consent``), so its storage refuses what the server would."""
    user = session.user_id
    consent = " ".join(allowed_categories(session))
    notice = banner(session) if prompt else ""
    who = f"signed in as <b>{e(user)}</b>" if user is not None else "anonymous visitor"
    nav = '<a href="/">Shop</a>'
    nav += ' <a href="/account">Account</a>' if user else ' <a href="/login">Sign in</a>'
    # A visitor with no stored session has no CSRF secret yet, and minting one here would
    # store a session on a plain visit; /start (or the sign-in page) begins it.
    csrf = "" if session.is_new else f'<meta name=csrf-token content="{e(session.csrf_token())}">'
    return (
        f'<!doctype html>\n<html lang=en data-coatcheck-user="{e(user or "")}" '
        f'data-coatcheck-consent="{e(consent)}">'
        "<head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"{csrf}"
        '<script type=module src="/coatcheck/coatcheck.js"></script>'
        f"<title>{e(title)} · coatcheck demo</title><style>{CSS}</style></head><body>"
        f'<header><h1>coatcheck demo shop</h1><nav aria-label="Main">{nav}</nav>'
        f"<span>{who}</span></header>{notice}<main>{body}</main>{footer()}</body></html>\n"
    )


def _cart(session: Session) -> str:
    items = session.get("cart", [])
    counts = Counter(str(item) for item in items)
    if counts:
        rows = "".join(
            f"<li>{e(PRODUCTS.get(item, item))} &times; {count}</li>"
            for item, count in counts.items()
        )
        contents = f"<ul>{rows}</ul>{button(session, '/cart/clear', 'Empty the cart', css='quiet')}"
    else:
        contents = "<p>Your cart is empty.</p>"
    options = "".join(
        f'<option value="{e(pid)}">{e(name)}</option>' for pid, name in PRODUCTS.items()
    )
    add = (
        f'<form method=post action="/cart/add">{csrf_field(session)}'
        f"<label>Product <select name=item>{options}</select></label> "
        "<button>Add to cart</button></form>"
    )
    return f"<section><h2>Cart</h2>{contents}{add}</section>"


def sign_in_form(session: Session, error: str | None) -> str:
    """The sign-in form, with the demo users named under it."""
    users = ", ".join(f"<code>{e(u)}</code> / <code>{e(p)}</code>" for u, p in DEMO_USERS.items())
    return (
        f"<section{' class=error' if error else ''} aria-labelledby=sign-in>"
        f"<h2 id=sign-in>Sign in</h2>{problem(error)}"
        f'<form class=stack method=post action="/login">{csrf_field(session)}'
        "<label>Username <input name=username autocomplete=username required></label>"
        "<label>Password <input name=password type=password autocomplete=current-password "
        "required></label>"
        "<label class=check><input type=checkbox name=remember value=1> Remember me on this "
        "device</label>"
        "<div><button>Sign in</button></div></form>"
        f"<p class=muted>Demo users (username / password): {users}. Passwords are stored "
        "only as argon2id hashes; a changed one lasts until the server restarts.</p></section>"
    )


def _signed_in(session: Session) -> str:
    how = "remember-me (persistent cookie)" if session.remember else "until you close the browser"
    return (
        f"<section><h2>Account</h2><p>Signed in as <b>{e(session.user_id)}</b> "
        f"({e(how)}), authenticated at {e(when(session.auth_at))}.</p>"
        f"<p>{button(session, '/logout', 'Sign out', css='quiet')} "
        '<a href="/account">Your account and devices</a></p>'
        "</section>"
    )


def _welcome() -> str:
    """What a visitor without a session sees instead of the forms (which need a session's
    CSRF secret): the catalogue, and the links that start a session."""
    products = "".join(f"<li>{e(name)}</li>" for name in PRODUCTS.values())
    return (
        "<section><h2>Welcome</h2><p>You have no session yet, and looking costs the server "
        'nothing. <a href="/start">Start shopping</a> to get one (a cart, and a sign-in '
        'form), or <a href="/login">sign in</a>.</p></section>'
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
        "it changed (an addition is an append made in the store, so additions from two "
        "tabs at once both land), and a page that only reads (like this one) writes "
        "nothing.</li>"
        "<li>Every form carries a CSRF token, masked afresh for each form; a post from "
        "another site, or without a valid token, is refused before it can change your "
        "session.</li>"
        "<li>Signing in issues a new token (no session fixation) and keeps your cart; "
        "signing out deletes the session on the server, not just the cookie.</li>"
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
        account = (
            _signed_in(session) if session.user_id is not None else sign_in_form(session, error)
        )
        body = f"{account}{_cart(session)}{_explanation(session, config, now)}"
    return layout("Shop", body, session)


def sign_in_page(session: Session, *, error: str | None = None) -> str:
    return layout("Sign in", sign_in_form(session, error), session)


def message_page(session: Session, title: str, message: str) -> str:
    return layout(
        title, f"<h2>{e(title)}</h2><p>{e(message)}</p><p><a href='/'>Back</a></p>", session
    )
