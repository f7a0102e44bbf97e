"""A browser-like client that calls an ASGI app in-process: no sockets, no HTTP parsing.

It keeps the cookies the app sets and sends them back, as a browser would, so every
measured request is a real session round trip (a rotating signed cookie is followed, a
cleared cookie is dropped). The request loop is deliberately plain: its cost is the same for
every configuration, so it cancels out of the overhead above the bare app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from .harness import BenchError

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]

USER_AGENT = b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
_REQUEST = {"type": "http.request", "body": b"", "more_body": False}


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]


class AsgiClient:
    """One browser: a cookie jar and a fixed set of realistic request headers."""

    def __init__(self, app: ASGIApp, *, host: bytes = b"shop.example") -> None:
        self.app = app
        self.host = host
        self.cookies: dict[str, str] = {}
        self._cookie_header: tuple[bytes, bytes] | None = None
        # Per-request state written by _send.
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = b""
        self.expect_body: bytes | None = None
        """When set, every response of the request loop must have exactly this body."""

    # -- cookies -------------------------------------------------------------------------
    def _store_cookie(self, set_cookie: bytes) -> None:
        text = set_cookie.decode("latin-1")
        pair, _, attributes = text.partition(";")
        name, _, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        lowered = attributes.lower()
        if (
            value in ("", '""', "''")
            or "max-age=0" in lowered
            or "expires=thu, 01 jan 1970" in lowered
        ):
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value
        header = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self._cookie_header = (b"cookie", header.encode("latin-1")) if header else None

    # -- ASGI plumbing -------------------------------------------------------------------
    @staticmethod
    async def _receive() -> Message:
        return _REQUEST

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = message["status"]
            headers = message.get("headers") or []
            self._headers = headers
            for name, value in headers:
                if name == b"set-cookie" or name.lower() == b"set-cookie":
                    self._store_cookie(value)
        elif message["type"] == "http.response.body":
            self._body += message.get("body", b"")

    def _scope(self, path: str) -> dict[str, Any]:
        headers = [
            (b"host", self.host),
            (b"user-agent", USER_AGENT),
            (b"accept", b"text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
            (b"accept-language", b"en-GB,en;q=0.7"),
        ]
        if self._cookie_header is not None:
            headers.append(self._cookie_header)
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "https",
            "path": path,
            "raw_path": path.encode("ascii"),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("203.0.113.42", 51234),
            "server": ("shop.example", 443),
        }

    # -- requests ------------------------------------------------------------------------
    async def get(self, path: str) -> Response:
        """One request, returning the whole response (setup and checks)."""
        self._status, self._headers, self._body = 0, [], b""
        try:
            await self.app(self._scope(path), self._receive, self._send)
        except Exception as exc:
            raise BenchError(f"GET {path} raised {exc!r}") from exc
        return Response(self._status, list(self._headers), self._body)

    def runner(self, path: str) -> Callable[[int], Awaitable[None]]:
        """A coroutine function that sends ``n`` GETs for ``path`` and fails loudly if any
        answer was not a 200 (or not ``expect_body``)."""
        app, receive, send, scope = self.app, self._receive, self._send, self._scope

        async def run(n: int) -> None:
            bad = 0
            expect = self.expect_body
            try:
                for _ in range(n):
                    self._body = b""
                    await app(scope(path), receive, send)
                    if self._status != 200 or (expect is not None and self._body != expect):
                        bad += 1
            except Exception as exc:
                raise BenchError(f"GET {path} raised {exc!r}") from exc
            if bad:
                raise BenchError(
                    f"{bad}/{n} requests to {path} failed (last: status {self._status}, "
                    f"body {self._body[:60]!r})"
                )

        return run
