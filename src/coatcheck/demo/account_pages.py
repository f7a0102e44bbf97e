"""The account page of the demo: who you are, your devices, and the two changes that need
your password (a new password; a new e-mail address, which asks for the password again
when you signed in more than ``REAUTH_AFTER`` seconds ago).

Plain forms, each control inside its ``<label>``, each button named by its text (the
"Revoke" buttons add the device to their name for screen readers), so the page works and
reads the same without JavaScript.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coatcheck.core.session import Session
from coatcheck.demo.forms import button, csrf_field, e, problem
from coatcheck.demo.pages import duration, layout, when
from coatcheck.engine.results import SessionInfo
from coatcheck.security.reauth import recent_auth_problem

REAUTH_AFTER = 5 * 60
"""Seconds after which changing the e-mail address asks for the password again."""


@dataclass(frozen=True, slots=True)
class AccountView:
    """What the account page shows besides the session: the user's e-mail, their live
    sessions, and any outcome of the last form (a notice, or an error for one form)."""

    email: str
    devices: Sequence[SessionInfo]
    now: float
    notice: str | None = None
    password_error: str | None = None
    email_error: str | None = None
    email_value: str | None = None


def _device_row(session: Session, info: SessionInfo, now: float) -> str:
    this = info.handle == session.handle
    marker = " <span class=this-device>(this device)</span>" if this else ""
    label = "Sign out" if this else "Revoke"
    agent = info.user_agent or "unknown"
    action = button(
        session,
        "/account/devices/revoke",
        label,
        [("handle", info.handle)],
        css="danger",
        hidden_label=f"the session on {agent} ({info.handle})",
    )
    return (
        f"<tr{' class=this' if this else ''}>"
        f"<td>{e(agent)}{marker}<br><code class=muted>{e(info.handle)}</code></td>"
        f"<td>{e(when(info.created_at))}</td>"
        f"<td>{e(duration(now - info.last_seen_at))} ago</td>"
        f"<td>{e(info.ip or '-')}</td>"
        f"<td>{action}</td>"
        "</tr>"
    )


def _devices(session: Session, view: AccountView) -> str:
    rows = "".join(_device_row(session, info, view.now) for info in view.devices)
    others = any(info.handle != session.handle for info in view.devices)
    everywhere = (
        button(session, "/account/devices/revoke-others", "Sign out everywhere else", css="danger")
        if others
        else "<span class=muted>No other device is signed in.</span>"
    )
    return (
        "<section aria-labelledby=devices><h2 id=devices>Your devices</h2>"
        f"<p>{len(view.devices)} active session(s) for <b>{e(session.user_id)}</b>. "
        "IP addresses are truncated before they are stored.</p>"
        "<table><thead><tr><th>Device</th><th>Signed in</th><th>Last seen</th>"
        "<th>IP (truncated)</th><th><span class=visually-hidden>Action</span></th></tr>"
        f"</thead><tbody>{rows}</tbody></table><p>{everywhere}</p></section>"
    )


def _password_form(session: Session, view: AccountView) -> str:
    return (
        "<section aria-labelledby=password><h2 id=password>Change password</h2>"
        f"{problem(view.password_error)}"
        f'<form class=stack method=post action="/account/password">{csrf_field(session)}'
        "<label>Current password <input name=current_password type=password "
        "autocomplete=current-password required></label>"
        "<label>New password <input name=new_password type=password "
        "autocomplete=new-password minlength=8 required></label>"
        "<label>New password again <input name=confirm_password type=password "
        "autocomplete=new-password minlength=8 required></label>"
        "<div><button>Change password</button></div></form>"
        "<p class=muted>Changing it signs out every other device.</p></section>"
    )


def needs_password_again(session: Session, now: float) -> bool:
    """True when a sensitive change must ask for the password first."""
    return recent_auth_problem(session, REAUTH_AFTER, now) is not None


def _email_form(session: Session, view: AccountView) -> str:
    confirm = ""
    if needs_password_again(session, view.now):
        ago = duration(view.now - (session.auth_at or 0.0))
        confirm = (
            f"<p class=muted>You signed in {e(ago)} ago: to change your e-mail address, "
            f"enter your password again (asked after {REAUTH_AFTER // 60} minutes).</p>"
            "<label>Password <input name=password type=password "
            "autocomplete=current-password></label>"
        )
    value = view.email_value if view.email_value is not None else ""
    return (
        "<section aria-labelledby=email><h2 id=email>Change e-mail</h2>"
        f"{problem(view.email_error)}<p>Your e-mail address is <b>{e(view.email)}</b>.</p>"
        f'<form class=stack method=post action="/account/email">{csrf_field(session)}'
        f'<label>New e-mail address <input name=email type=email autocomplete=email value="'
        f'{e(value)}" required></label>{confirm}'
        "<div><button>Change e-mail</button></div></form></section>"
    )


def account_page(session: Session, view: AccountView) -> str:
    how = "remember-me (persistent cookie)" if session.remember else "until you close the browser"
    notice = f"<p class=notice role=status>{e(view.notice)}</p>" if view.notice else ""
    body = (
        f"{notice}<section aria-labelledby=account><h2 id=account>Account</h2>"
        f"<p>Signed in as <b>{e(session.user_id)}</b> ({e(how)}); last authenticated at "
        f"{e(when(session.auth_at))}.</p>"
        f"<p>{button(session, '/logout', 'Sign out', css='quiet')}</p></section>"
        f"{_devices(session, view)}"
        f"<div class=grid>{_password_form(session, view)}{_email_form(session, view)}</div>"
    )
    return layout("Your account", body, session)
