"""A same-origin check for the demo's POST forms, until synchronizer tokens exist.

SameSite=Lax already keeps the session cookie off cross-site POSTs in current browsers;
this check is the second layer OWASP recommends: a browser names the page that sent a
form (``Origin``, ``Sec-Fetch-Site``), and a form sent from another site is refused before
any handler can change the session.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

Endpoint = Callable[[Request], Awaitable[Response]]


def own_origin(request: Request) -> str:
    """``scheme://host[:port]`` of the request itself, as a browser would write its Origin."""
    host = request.headers.get("host") or request.url.netloc
    return f"{request.url.scheme}://{host}".lower()


def is_same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site.

    A missing ``Origin`` is allowed (older browsers and non-browser clients omit it);
    ``Origin: null`` (sandboxed frames, some redirects) is not, because it matches nothing.
    """
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return False
    origin = request.headers.get("origin")
    return origin is None or origin.lower() == own_origin(request)


def same_origin_only(endpoint: Endpoint) -> Endpoint:
    """Wrap a POST endpoint so a cross-origin request gets 403 and changes nothing."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        if not is_same_origin(request):
            return HTMLResponse(
                "<h1>403 Forbidden</h1><p>Cross-site form submission refused.</p>",
                status_code=403,
            )
        return await endpoint(request)

    return guarded
