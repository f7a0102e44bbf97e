"""Which requests are page views, read from their headers alone (no framework here).

A page view is a request whose ``Accept`` prefers ``text/html``: a browser's navigation or
form submission, not its ``fetch`` calls, images or scripts (which ask for ``*/*`` or their
own type). ``Sec-GPC: 1`` is Global Privacy Control: a refusal that stands whatever the
session's consent says.
"""

from __future__ import annotations

__all__ = ["gpc_refuses", "prefers_html"]

_HTML = ("text/html", "application/xhtml+xml")


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def prefers_html(accept: str | None) -> bool:
    """Does ``accept`` rank ``text/html`` (or XHTML) first, at a quality above zero? Ties
    count: ``text/html,application/json`` is a page view."""
    if not accept:
        return False
    best = 0.0
    html = 0.0
    for item in accept.split(",")[:32]:
        kind, *params = item.split(";")
        q = _quality(params)
        best = max(best, q)
        if kind.strip().lower() in _HTML:
            html = max(html, q)
    return html > 0 and html >= best


def gpc_refuses(value: str | None) -> bool:
    """``Sec-GPC: 1`` asks not to be tracked (the only value the spec defines)."""
    return value is not None and value.strip() == "1"
