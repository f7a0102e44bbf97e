"""An HTTP client that keeps the session cookie the way a browser on HTTPS would.

The test servers speak plain HTTP on loopback, where cookie jars refuse to send a
``Secure`` cookie; this client stores cookies from ``Set-Cookie`` itself (honouring
``Max-Age=0``) and sends them back, so tests see exactly what a browser would do.
"""

from __future__ import annotations

from typing import Any

import httpx


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
    def __init__(self, base_url: str, **kwargs: Any) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10, **kwargs)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
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
