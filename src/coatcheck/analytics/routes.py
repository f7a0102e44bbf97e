"""What a page view names: the route template where the framework knows one, else the
path with its ids folded, and never the query string.

Folding keeps the figures readable (``/orders/{id}`` once, not a row per order) and keeps
identifiers out of the analytics store: a segment of digits, a UUID or a long hex string
becomes ``{id}``.
"""

from __future__ import annotations

import re

__all__ = ["flask_rule", "fold_path", "route_of"]

_ID = re.compile(
    r"\d+"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}"
)
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
MAX_ROUTE = 512
"""A route longer than this is cut: a path is attacker-chosen, a row need not grow with it."""


def fold_path(path: str) -> str:
    """``path`` without its query string, each id segment replaced by ``{id}``."""
    path = path.split("?", 1)[0].split("#", 1)[0] or "/"
    segments = ["{id}" if _ID.fullmatch(s) else s for s in path.split("/")]
    return "/".join(segments)[:MAX_ROUTE]


def flask_rule(rule: str) -> str:
    """A Flask / Werkzeug or Django rule (``/products/<int:id>``) as a template
    (``/products/{id}``)."""
    return _CONVERTER.sub(r"{\1}", rule)


def route_of(path: str, template: str | None = None) -> str:
    """The route a page view records: ``template`` when the framework matched one, else
    ``path`` folded."""
    if template:
        route = flask_rule(template)
        return (route if route.startswith("/") else "/" + route)[:MAX_ROUTE]
    return fold_path(path)
