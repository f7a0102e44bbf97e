"""ASGI middleware: a thin edge between any ASGI app (Starlette, FastAPI, Litestar) and the
SessionManager.

It reads the token (cookie, or ``Authorization: Bearer``), loads the session into
``scope["session"]`` (so Starlette's ``request.session`` is the coatcheck session) and
commits when the app starts its response, before the headers leave. A store failure
becomes a 503 with a short plain message; the app never runs with an empty session that
could later overwrite the real one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .client import ClientInfo
from .cookies import clear_cookie, read_cookie, set_cookie
from .errors import StoreUnavailable
from .manager import CommitResult, SessionManager

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("coatcheck")

UNAVAILABLE_BODY = b"Session store unavailable; please retry shortly.\n"
TRANSPORT_HEADER = b"x-session-transport"
"""A client without a token yet sends ``X-Session-Transport: bearer`` to receive its token
in a response header instead of a cookie."""


class RequestToken:
    """The token a request presented and how it travelled."""

    __slots__ = ("bearer", "token", "user_agent")

    def __init__(self, token: str | None, bearer: bool, user_agent: str | None) -> None:
        self.token = token
        self.bearer = bearer
        self.user_agent = user_agent


def read_request(
    headers: list[tuple[bytes, bytes]], cookie_name: str, allow_bearer: bool
) -> RequestToken:
    """Extract the token from ASGI headers. Bearer wins over the cookie: it is explicit."""
    cookie_parts: list[str] = []
    bearer: str | None = None
    wants_bearer = False
    user_agent: str | None = None
    for name, value in headers:
        if name == b"cookie":
            cookie_parts.append(value.decode("latin-1"))
        elif name == b"authorization" and allow_bearer:
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                bearer = credentials.strip()
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
        elif name == TRANSPORT_HEADER and allow_bearer:
            wants_bearer = value.strip().lower() == b"bearer"
    if bearer is not None:
        return RequestToken(bearer, True, user_agent)
    token = read_cookie("; ".join(cookie_parts), cookie_name) if cookie_parts else None
    return RequestToken(token, wants_bearer and token is None, user_agent)


async def send_unavailable(send: Send) -> None:
    """A short plain 503: the store failed, the client may retry."""
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(UNAVAILABLE_BODY)).encode()),
                (b"retry-after", b"5"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": UNAVAILABLE_BODY})


class SessionMiddleware:
    """``Middleware(SessionMiddleware, manager=manager)`` in Starlette or FastAPI."""

    def __init__(self, app: ASGIApp, manager: SessionManager) -> None:
        self.app = app
        self.manager = manager
        config = manager.config
        self._cookie_name = config.cookie_name
        self._allow_bearer = config.allow_bearer
        self._token_header = config.token_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        request = read_request(scope["headers"], self._cookie_name, self._allow_bearer)
        manager = self.manager
        client = scope.get("client")
        info = ClientInfo.from_raw(request.user_agent, client[0] if client else None)
        try:
            session = await manager.load(request.token, info)
        except StoreUnavailable as exc:
            logger.warning("session store unavailable on load: %s", exc)
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1013})
            else:
                await send_unavailable(send)
            return
        session._via_bearer = request.bearer
        scope["session"] = session
        if kind == "websocket":
            # Read at the handshake; a WebSocket cannot deliver a new cookie afterwards,
            # so writes are refused (SessionCommittedError) rather than silently lost.
            session._committed = True
            await self.app(scope, receive, send)
            return

        failed = False

        async def send_wrapper(message: Message) -> None:
            nonlocal failed
            if message["type"] == "http.response.start":
                try:
                    result = await manager.commit(session)
                except StoreUnavailable as exc:
                    logger.warning("session store unavailable on commit: %s", exc)
                    failed = True
                    await send_unavailable(send)
                    return
                if result.changes_token or session._user_id is not None:
                    message["headers"] = self._headers(
                        message.get("headers", ()), result, request.bearer
                    )
            elif failed:
                return  # the 503 is already out; drop the app's body
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _headers(
        self, headers: Any, result: CommitResult, bearer: bool
    ) -> list[tuple[bytes, bytes]]:
        config = self.manager.config
        out = list(headers)
        has_cache_control = any(name.lower() == b"cache-control" for name, _ in out)
        if result.changes_token:
            # A response that carries a credential must never be cached or shared.
            out = [(n, v) for n, v in out if n.lower() != b"cache-control"]
            has_cache_control = False
            if bearer:
                value = result.token or ""
                out.append((self._token_header, value.encode("latin-1")))
            elif result.token is not None:
                out.append(
                    (
                        b"set-cookie",
                        set_cookie(config, result.token, result.max_age).encode("latin-1"),
                    )
                )
            else:
                out.append((b"set-cookie", clear_cookie(config).encode("latin-1")))
        if not has_cache_control:
            out.append((b"cache-control", b"no-store"))
        return out
