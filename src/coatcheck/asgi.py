"""ASGI middleware: a thin edge between any ASGI app (Starlette, FastAPI, Litestar) and the
SessionManager.

It reads the token (cookie, or ``Authorization: Bearer``), loads the session into
``scope["session"]`` (so Starlette's ``request.session`` is the coatcheck session) and
commits when the app starts its response, before the headers leave. A store failure
becomes a 503 with a short plain message; the app never runs with an empty session that
could later overwrite the real one. The rules shared with the sync edges (which token
counts, which headers a commit sends, the 503) live in ``coatcheck.edge``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from . import edge
from .client import ClientInfo
from .edge import UNAVAILABLE_BODY, RequestToken
from .errors import StoreUnavailable
from .manager import SessionManager

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("coatcheck")

__all__ = ["UNAVAILABLE_BODY", "RequestToken", "SessionMiddleware", "read_request"]

read_request = edge.read_header_list
"""Kept under its first name: the token in an ASGI header list (see ``coatcheck.edge``)."""

_UNAVAILABLE_HEADERS = [
    (n.encode("latin-1"), v.encode("latin-1")) for n, v in edge.UNAVAILABLE_HEADERS
]


def _latin1(value: str) -> bytes:
    return value.encode("latin-1")


async def send_unavailable(send: Send) -> None:
    """A short plain 503: the store failed, the client may retry."""
    await send(
        {
            "type": "http.response.start",
            "status": edge.UNAVAILABLE_STATUS,
            "headers": list(_UNAVAILABLE_HEADERS),
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        request = edge.read_header_list(scope["headers"], self._cookie_name, self._allow_bearer)
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
                update = edge.session_headers(
                    manager.config,
                    result,
                    bearer=request.bearer,
                    authenticated=session._user_id is not None,
                )
                if update is not None:
                    message["headers"] = edge.merge_headers(
                        message.get("headers", ()), update, b"cache-control", _latin1
                    )
            elif failed:
                return  # the 503 is already out; drop the app's body
            await send(message)

        await self.app(scope, receive, send_wrapper)
