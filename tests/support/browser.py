"""An HTTP client that keeps the session cookie the way a browser on HTTPS would.

The test servers speak plain HTTP on loopback, where cookie jars refuse to send a
``Secure`` cookie; this client stores cookies from ``Set-Cookie`` itself (honouring
``Max-Age=0``) and sends them back, so tests see exactly what a browser would do.

Like a person who opens a page before submitting its form, it renders ``csrf_path`` before
each unsafe request (POST, PUT, ...) and sends the CSRF token that page holds (an HTML
form's ``csrf_token`` field, a JSON ``csrf_token`` member, else the whole text) in the
``X-CSRF-Token`` header, so tests about something other than CSRF read as before. No render
precedes a request that already carries a token (that header, per request or among the
client's defaults, or a ``csrf_token`` form field) or that holds no cookie credential (an
API request with ``Authorization`` or ``X-Session-Transport``). ``csrf_path=None`` turns
the render off (front ends that manage their token, apps with their own CSRF like Django).
When the render itself fails with 503 (the store is down), that page is what the user
sees: it is returned and the unsafe request is never sent.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FIELD = re.compile(
    r"""name=["']?csrf_token["']?[^>]*?value=["']?([A-Za-z0-9_-]+)""", re.IGNORECASE
)


def token_in(response: httpx.Response) -> str | None:
    """The CSRF token a rendered page holds: a form field of an HTML page, the
    ``csrf_token`` member of a JSON object, else the whole text."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("text/html"):
        match = _FIELD.search(response.text)
        return match.group(1) if match else None
    if content_type.startswith("application/json"):
        body = response.json()
        value = body.get("csrf_token") if isinstance(body, dict) else None
        return value if isinstance(value, str) else None
    return response.text.strip() or None


def parse_set_cookie(value: str) -> tuple[str, str, dict[str, str]]:
    """Split a Set-Cookie value into name, value and lower-cased attributes."""
    first, *rest = value.split(";")
    name, _, cookie_value = first.strip().partition("=")
    attrs: dict[str, str] = {}
    for part in rest:
        key, _, attr_value = part.strip().partition("=")
        attrs[key.lower()] = attr_value
    return name, cookie_value, attrs


class Browser:
    def __init__(self, base_url: str, *, csrf_path: str | None = "/csrf", **kwargs: Any) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10, **kwargs)
        self.cookies: dict[str, str] = {}
        self.csrf_path = csrf_path

    def render(self, cookie: str | None = None) -> httpx.Response:
        """Open the page that holds a CSRF token (``csrf_path``), with the browser's
        cookies or the explicit ``cookie`` header a request is about to send."""
        assert self.csrf_path is not None
        headers = {"Cookie": cookie} if cookie is not None else {}
        return self.request("GET", self.csrf_path, headers=headers)

    def csrf_token(self) -> str:
        """A fresh CSRF token of this browser's session, for requests sent by other means."""
        response = self.render()
        token = token_in(response)
        assert response.status_code == 200 and token, response.text
        return token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        names = {k.lower() for k in headers}
        if (
            self.csrf_path is not None
            and method.upper() not in SAFE_METHODS
            and not names & {CSRF_HEADER.lower(), "authorization", "x-session-transport"}
            and CSRF_HEADER not in self.client.headers
            and "csrf_token" not in (kwargs.get("data") or {})
        ):
            cookie = next((v for k, v in headers.items() if k.lower() == "cookie"), None)
            rendered = self.render(cookie)
            if rendered.status_code == 503:
                return rendered
            token = token_in(rendered) if rendered.status_code == 200 else None
            if token is not None:
                headers[CSRF_HEADER] = token
        if self.cookies and "cookie" not in {k.lower() for k in headers}:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.client.request(method, path, headers=headers, **kwargs)
        for raw in response.headers.get_list("set-cookie"):
            name, value, attrs = parse_set_cookie(raw)
            if attrs.get("max-age") == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
