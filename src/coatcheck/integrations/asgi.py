"""ASGI middleware: a thin edge between any ASGI app (Starlette, FastAPI, Litestar) and the
SessionManager.

It reads the token (cookie, or ``Authorization: Bearer``), loads the session into
``scope["session"]`` (so Starlette's ``request.session`` is the coatcheck session) and
commits when the app starts its response, before the headers leave. A store failure
becomes a 503 with a short plain message; the app never runs with an empty session that
could later overwrite the real one. The rules shared with the sync edges (which token
counts, which headers a commit sends, the 503) live in ``coatcheck.http.edge``.

Unsafe requests (POST, PUT, PATCH, DELETE, ...) pass the CSRF check of ``coatcheck.security.csrf``
before the app sees them: ``Sec-Fetch-Site`` and ``Origin`` first, then the token from the
``X-CSRF-Token`` header or, for forms, the ``csrf_token`` field. To find that field the
middleware reads the form body (at most ``edge.MAX_FORM_BODY``) and replays it to the app,
which reads it as if untouched. A refused request is a plain 403 naming the reason; the
app does not run and nothing is committed. ``csrf_exempt`` paths (webhooks) skip
the check; ``SessionConfig(csrf=False)`` turns it off.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from coatcheck.core.client import ClientInfo
from coatcheck.core.session import Session
from coatcheck.engine.manager import SessionManager
from coatcheck.http import edge
from coatcheck.http.edge import UNAVAILABLE_BODY, RequestToken
from coatcheck.security import csrf

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("coatcheck")

__all__ = ["UNAVAILABLE_BODY", "RequestToken", "SessionMiddleware", "read_request"]

read_request = edge.read_header_list
"""Kept under its first name: the token in an ASGI header list (see ``coatcheck.http.edge``)."""


def _latin1(value: str) -> bytes:
    return value.encode("latin-1")


async def send_refusal(send: Send, refusal: edge.Refusal) -> None:
    """Answer with ``refusal`` (503, 429, 403) instead of the app."""
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [(_latin1(n), _latin1(v)) for n, v in refusal.headers],
        }
    )
    await send({"type": "http.response.body", "body": refusal.body})


async def send_forbidden(send: Send, body: bytes, headers: Iterable[tuple[str, str]]) -> None:
    """The CSRF 403 (``edge.forbidden``)."""
    await send(
        {
            "type": "http.response.start",
            "status": edge.FORBIDDEN_STATUS,
            "headers": [(_latin1(n), _latin1(v)) for n, v in headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def buffer_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """Read the whole request body (None once it exceeds ``limit`` bytes) and return it
    with a ``receive`` that replays it, so the app reads the same body. Whatever follows
    (``http.disconnect``) comes from the server's own ``receive``."""
    chunks: list[bytes] = []
    size = 0
    after: list[Message] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            after.append(message)  # the client went away: the app hears it too
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, receive
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}, *after]

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return body, replay


class SessionMiddleware:
    """``Middleware(SessionMiddleware, manager=manager)`` in Starlette or FastAPI.

    ``csrf_exempt``: paths (``["/webhooks"]``, each with the paths below it) whose unsafe
    requests skip the CSRF check, for endpoints that authenticate by other means (a signed
    payload).
    """

    def __init__(
        self, app: ASGIApp, manager: SessionManager, *, csrf_exempt: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.manager = manager
        self.csrf = edge.CsrfGuard(manager, csrf_exempt)
        config = manager.config
        self._cookie_name = config.cookie_name
        self._allow_bearer = config.allow_bearer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        # Runs on every request: one pass over the headers, locals rather than objects.
        token, bearer, user_agent = edge.scan_header_list(
            scope["headers"], self._cookie_name, self._allow_bearer
        )
        manager = self.manager
        client = scope.get("client")
        info = ClientInfo(user_agent, client[0] if client else None)
        try:
            session = await manager.load(token, info)
        except edge.REFUSED as exc:
            await send_refusal(send, edge.refused(exc, "load"))
            return
        session.via_bearer = bearer
        scope["session"] = session
        scope["coatcheck.manager"] = manager  # for helpers that need the clock or config

        method: str = scope["method"]
        guard = self.csrf
        if guard.applies(method, scope["path"], bearer):
            rejection, receive = await self._check_csrf(scope, receive, session)
            if rejection is not None:
                body, headers = guard.rejected(session, rejection, method, scope["path"])
                await send_forbidden(send, body, headers)
                return

        failed = False

        async def send_wrapper(message: Message) -> None:
            nonlocal failed
            if message["type"] == "http.response.start":
                try:
                    result = await manager.commit(session)
                except edge.REFUSED as exc:
                    failed = True
                    await send_refusal(send, edge.refused(exc, "commit"))
                    return
                update = edge.session_headers(
                    manager.config,
                    result,
                    bearer=bearer,
                    authenticated=session.user_id is not None,
                )
                if update is not None:
                    message["headers"] = edge.merge_headers(
                        message.get("headers", ()), update, b"cache-control", _latin1
                    )
            elif failed:
                return  # the 503 is already out; drop the app's body
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake: the session is read, never written."""
        token, bearer, user_agent = edge.scan_header_list(
            scope["headers"], self._cookie_name, self._allow_bearer
        )
        manager = self.manager
        client = scope.get("client")
        info = ClientInfo(user_agent, client[0] if client else None)
        if not self._same_origin_handshake(scope):
            # Cross-site WebSocket hijacking: the browser attaches the cookie to any
            # site's handshake, so a foreign Origin is refused before the session loads.
            manager.emit("websocket.rejected", reason="origin mismatch")
            await send({"type": "websocket.close", "code": 1008})
            return
        try:
            session = await manager.load(token, info)
        except edge.REFUSED as exc:
            refusal = edge.refused(exc, "load")
            code = 1013 if refusal.status == 503 else 1008
            await send({"type": "websocket.close", "code": code})
            return
        session.via_bearer = bearer
        scope["session"] = session
        scope["coatcheck.manager"] = manager
        # Read at the handshake; a WebSocket cannot deliver a new cookie afterwards, so
        # writes are refused (SessionCommittedError) rather than silently lost. A long
        # connection re-checks with ``await manager.is_active(session.handle)``.
        session.close()
        await self.app(scope, receive, send)

    def _same_origin_handshake(self, scope: Scope) -> bool:
        """Is a WebSocket handshake's ``Origin`` absent (not a browser), the app's own, or
        trusted? ``ws``/``wss`` pages do not exist: the page that opened it was
        ``http``/``https`` on the same host."""
        origin: str | None = None
        host: str | None = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        if origin is None:
            return True
        scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
        rejection = csrf.check_origin(
            sec_fetch_site=None,
            origin=origin,
            own=csrf.own_origin(scheme, host),
            trusted_origins=self.csrf.trusted,
        )
        return rejection is None

    async def _check_csrf(
        self, scope: Scope, receive: Receive, session: Session
    ) -> tuple[csrf.Rejection | None, Receive]:
        """The CSRF verdict, and the ``receive`` the app must use (a replay when the body
        was read to find the token field)."""
        guard = self.csrf
        found = guard.read_header_list(scope["headers"])
        rejection = guard.screen(scope.get("scheme", "http"), found)
        if rejection is not None:
            return rejection, receive
        token = found.token
        if guard.wants_body(found):
            if found.content_length is not None and found.content_length > edge.MAX_FORM_BODY:
                return csrf.Rejection.BODY_TOO_LARGE, receive
            body, receive = await buffer_body(receive, edge.MAX_FORM_BODY)
            if body is None:
                return csrf.Rejection.BODY_TOO_LARGE, receive
            token = guard.body_token(found, body)
        return guard.verify(session, token), receive
