"""httpx ``Client`` / ``AsyncClient``, hence Starlette's and FastAPI's ``TestClient``.

The cookie is filed in the client's jar under the very (domain, path, name) the jar uses
for the app's own Set-Cookie, so a later rotation or logout replaces it instead of sitting
beside it; a ``Secure`` cookie is refused for an http base URL, where httpx (like a
browser) would never send it. The CSRF token goes into the client's default headers.
"""

from __future__ import annotations

import http.cookiejar
import urllib.request
from collections.abc import Mapping
from typing import Any

from coatcheck.core.config import SessionConfig
from coatcheck.engine.manager import SessionManager
from coatcheck.testing.clients import Resolved, instance_of, plain_user

__all__ = ["HttpxClient"]


def _effective_host(request: urllib.request.Request) -> str:
    """The domain http.cookiejar files a host-only cookie under (``testserver`` becomes
    ``testserver.local``): its own rule, which it does not export as typed API."""
    host: str = getattr(http.cookiejar, "eff_request_host")(request)[1]  # noqa: B009
    return host


def _set_httpx_cookie(client: Any, config: SessionConfig, token: str, url: str | None) -> None:
    base = url if url is not None else str(client.base_url)
    request = urllib.request.Request(base or "http://invalid/")  # noqa: S310 (parsed only)
    if not base or not request.host:
        raise ValueError("the client has no base_url: pass url= (the app's origin)")
    if config.secure and request.type != "https":
        raise ValueError(
            f"the session cookie {config.cookie_name!r} is Secure and httpx never sends a "
            f"Secure cookie to {base!r}: use an https base URL, e.g. "
            "TestClient(app, base_url='https://testserver')"
        )
    # File the cookie under the very (domain, path, name) the jar uses for the app's own
    # Set-Cookie, so a later rotation or logout replaces it instead of sitting beside it.
    if config.domain:
        domain, specified = "." + config.domain.lstrip("."), True
    else:
        domain, specified = _effective_host(request), False
    cookie = http.cookiejar.Cookie(
        version=0,
        name=config.cookie_name,
        value=token,
        port=None,
        port_specified=False,
        domain=domain,
        domain_specified=specified,
        domain_initial_dot=domain.startswith("."),
        path=config.path,
        path_specified=True,
        secure=config.secure,
        expires=None,
        discard=True,
        comment=None,
        comment_url=None,
        rest={"HttpOnly": ""} if config.http_only else {},
    )
    client.cookies.jar.set_cookie(cookie)


class HttpxClient:
    """The adapter for httpx clients (Starlette's TestClient is built on httpx2 when that
    is installed, else on httpx)."""

    def recognises(self, client: object) -> bool:
        return any(instance_of(client, m, "Client", "AsyncClient") for m in ("httpx", "httpx2"))

    def resolve(
        self, client: Any, manager: SessionManager | None, user: Any, data: Mapping[str, Any] | None
    ) -> Resolved:
        return plain_user(manager, user, data)

    def deliver(
        self,
        client: Any,
        manager: SessionManager,
        token: str,
        csrf_value: str | None,
        url: str | None,
        domain: str | None,
    ) -> None:
        config = manager.config
        _set_httpx_cookie(client, config, token, url)
        if csrf_value is not None:
            client.headers[config.csrf_header] = csrf_value
