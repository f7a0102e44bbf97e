"""The HTML pieces every page of the demo builds forms from: escaping, the CSRF field, a
one-button form and an error line. Each control sits inside its ``<label>`` and each
button is named by its text, so the pages read the same to a screen reader."""

from __future__ import annotations

import html
from collections.abc import Iterable

from coatcheck.core.session import Session

__all__ = ["button", "csrf_field", "e", "problem"]


def e(value: object) -> str:
    """Escape any value for HTML text and attribute context."""
    return html.escape(str(value), quote=True)


def csrf_field(session: Session) -> str:
    """The hidden field that proves a form came from one of this site's own pages."""
    return f'<input type=hidden name="csrf_token" value="{e(session.csrf_token())}">'


def button(
    session: Session,
    action: str,
    label: str,
    fields: Iterable[tuple[str, str]] = (),
    *,
    css: str = "",
    hidden_label: str = "",
) -> str:
    """A one-button form. ``hidden_label`` is read to screen readers after the visible
    label (which it keeps as its start), so ten "Revoke" buttons are ten distinct names."""
    hidden = csrf_field(session) + "".join(
        f'<input type=hidden name="{e(k)}" value="{e(v)}">' for k, v in fields
    )
    extra = f"<span class=visually-hidden> {e(hidden_label)}</span>" if hidden_label else ""
    klass = f" class={css}" if css else ""
    return (
        f'<form class=inline method=post action="{e(action)}">{hidden}'
        f"<button{klass}>{e(label)}{extra}</button></form>"
    )


def problem(error: str | None) -> str:
    return f"<p class=error role=alert>{e(error)}</p>" if error else ""
