"""ASGI middleware: a thin edge between any ASGI app (Starlette, FastAPI, Litestar) and the
SessionManager.

It reads the token (cookie, or ``Authorization: Bearer``), loads the session into
``scope["session"]`` (so Starlette's ``request.session`` is the coatcheck session) and
commits when the app starts its response, before the headers leave. A store failure
becomes a 503 with a short plain message; the app never runs with an empty session that
could later overwrite the real one. The rules shared with the sync edges live in
``coatcheck.http``: which token counts (``transport``), which headers a commit sends
(``headers``), the refusals (``refusals``) and the CSRF verdict (``csrf_check``); this
module only translates ASGI messages to and from them.

Unsafe requests (POST, PUT, PATCH, DELETE, ...) pass the CSRF check before the app sees
them: ``Sec-Fetch-Site`` and ``Origin`` first, then the token from the ``X-CSRF-Token``
header or, for forms, the ``csrf_token`` field. To find that field the middleware reads the
form body (at most ``forms.MAX_FORM_BODY``) and replays it to the app, which reads it as if
untouched. A refused request is a plain 403 naming the reason; the app does not run and
nothing is committed. ``csrf_exempt`` paths (webhooks) skip the check;
``SessionConfig(csrf=False)`` turns it off.

``passive`` paths (polling routes: ``["/notifications/poll"]``, each with the paths below
it) get their session read-only: it is checked as on any request, but never committed, so
a page that polls neither slides the idle deadline nor counts as activity. A change made to
it there raises ``SessionCommittedError`` instead of being lost silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final

from coatcheck.analytics.recorder import PageRecorder
from coatcheck.core import events as ev
from coatcheck.core.client import ClientInfo
from coatcheck.core.session import Session
from coatcheck.engine.locking import Held, session_locks
from coatcheck.engine.manager import NO_CHANGE, SessionManager
from coatcheck.http import transport
from coatcheck.http.csrf_check import CsrfCheck, NeedBody
from coatcheck.http.forwarded import Proxies
from coatcheck.http.headers import expires_value, merge_headers, session_headers
from coatcheck.http.pageviews import facts_from_header_list, recorder_for
from coatcheck.http.paths import is_under, prefixes
from coatcheck.http.refusals import (
    REFUSED,
    UNAVAILABLE_BODY,
    Refusal,
    refused,
    refused_at_load,
)
from coatcheck.http.transport import RequestToken, scan_header_list
from coatcheck.privacy import minimise

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("coatcheck")

__all__ = [
    "LOCK_SCOPE_KEY",
    "MANAGER_SCOPE_KEY",
    "UNAVAILABLE_BODY",
    "RequestToken",
    "SessionMiddleware",
    "lock_route",
    "read_request",
]

MANAGER_SCOPE_KEY: Final = "coatcheck.manager"
"""Where the middleware puts its SessionManager in the scope, next to ``scope["session"]``,
for helpers that need its clock or config (``coatcheck.starlette``, ``coatcheck.fastapi``)."""

LOCK_SCOPE_KEY: Final = "coatcheck.lock"
"""Where the middleware puts, for a request it did not lock, the coroutine function a route
marked locked calls first (``coatcheck.starlette.locked_session``, ``coatcheck.fastapi``'s
``LockedSession``): it takes the session's lock and loads the session again under it, so
the route reads what the request before it committed. It raises one of ``REFUSED``."""

read_request = transport.read_header_list
"""Kept under its first name: the token in an ASGI header list (``coatcheck.http.transport``)."""


def _latin1(value: str) -> bytes:
    return value.encode("latin-1")


async def lock_route(scope: Scope) -> Refusal | None:
    """What a route marked locked runs first (``coatcheck.starlette.locked_session``,
    ``coatcheck.fastapi.LockedSession``): the session's lock, and the session loaded again
    under it into ``scope["session"]``. None once it holds the lock (or when there is
    nothing to lock: a new session, or a request the middleware locked already); the
    refusal to send instead of the route's answer otherwise (409 ``SessionLocked``, 503).
    A store that cannot lock raises MissingCapability on the route's first request."""
    manager = scope.get(MANAGER_SCOPE_KEY)
    if not isinstance(manager, SessionManager):
        raise RuntimeError("coatcheck.asgi.SessionMiddleware must wrap this app")
    session_locks(manager)  # MissingCapability for a store that cannot lock
    relock: Callable[[], Awaitable[Session]] | None = scope.get(LOCK_SCOPE_KEY)
    if relock is None:
        return None
    try:
        await relock()
    except REFUSED as exc:
        return refused(exc, "load")
    return None


async def send_refusal(send: Send, refusal: Refusal) -> None:
    """Answer with ``refusal`` (503, 429, the CSRF 403, ...) instead of the app."""
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [(_latin1(n), _latin1(v)) for n, v in refusal.headers],
        }
    )
    await send({"type": "http.response.body", "body": refusal.body})


async def buffer_body(
    receive: Receive, limit: int, declared: int | None = None
) -> tuple[bytes | None, Receive]:
    """Read the whole request body (None once it exceeds ``limit`` bytes, or at once when
    its declared length does) and return it with a ``receive`` that replays it, so the app
    reads the same body. Whatever follows (``http.disconnect``) comes from the server's own
    ``receive``."""
    if declared is not None and declared > limit:
        return None, receive
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


class _Request:
    """What one request's parts share: its session (a route marked locked loads it again),
    the session lock it holds, and whether its commit was refused."""

    __slots__ = ("failed", "held", "session")

    def __init__(self) -> None:
        self.session: Session | None = None
        self.held: Held | None = None
        self.failed = False


class RecordPages:
    """The app, as the middleware calls it when analytics is on: once the app answered,
    its page view (status, duration, the route Starlette or FastAPI matched) and the
    events it tracked go to the recorder. Inside the middleware, so a request the
    middleware refused (CSRF, a dead store) is no page view."""

    def __init__(self, app: ASGIApp, recorder: PageRecorder, clock: Callable[[], float]) -> None:
        self.app = app
        self.recorder = recorder
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, began = self.clock(), time.perf_counter()
        status: int | None = None

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message.get("status")
            await send(message)

        await self.app(scope, receive, sending)
        session = scope.get("session")
        if isinstance(session, Session):
            facts = facts_from_header_list(
                scope["headers"],
                scope["method"],
                scope["path"],
                status,
                started,
                time.perf_counter() - began,
                getattr(scope.get("route"), "path", None),
            )
            self.recorder.after_response(session, facts)


class SessionMiddleware:
    """``Middleware(SessionMiddleware, manager=manager)`` in Starlette or FastAPI.

    ``csrf_exempt``: paths (``["/webhooks"]``, each with the paths below it) whose unsafe
    requests skip the CSRF check, for endpoints that authenticate by other means (a signed
    payload). ``passive``: paths whose session is read-only and never committed (see the
    module docstring). ``locked``: paths whose requests of one session run one at a time
    (``coatcheck.engine.locking``): the lock is taken before the load and freed after the
    commit, or when the app raised or the client left; ``SessionConfig.lock_sessions``
    locks every path. A lock not had within ``lock_timeout`` is a 409 with
    ``Retry-After``, and the app does not run.
    """

    def __init__(
        self,
        app: ASGIApp,
        manager: SessionManager,
        *,
        csrf_exempt: Iterable[str] = (),
        passive: Iterable[str] = (),
        locked: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.manager = minimise.install(manager)
        self.csrf = CsrfCheck(manager, csrf_exempt)
        self.passive = prefixes(passive)
        self.locked = prefixes(locked)
        config = manager.config
        self._lock_all = config.lock_sessions
        # Built now, so a store that cannot lock fails when the app starts.
        self._locks = session_locks(manager) if self._lock_all or self.locked else None
        self._cookie_name = config.cookie_name
        self._allow_bearer = config.allow_bearer
        self._proxies = Proxies.of(config)
        self.recorder = recorder_for(manager)
        """The analytics page-view recorder (``SessionConfig.analytics_url``), or None."""
        if self.recorder is not None:
            self.app = RecordPages(app, self.recorder, manager.clock)

    def _client(self, scope: Scope) -> tuple[str | None, str]:
        """The client's address and scheme: the connection's, or what a trusted proxy
        forwarded (``SessionConfig.trusted_proxies``)."""
        client = scope.get("client")
        peer = client[0] if client else None
        scheme: str = scope.get("scheme", "http")
        if self._proxies is None:
            return peer, scheme
        return self._proxies.from_header_list(scope["headers"], peer, scheme)

    async def _load(self, scope: Scope) -> Session:
        """The request's session, in the scope; raises one of ``REFUSED``. (``__call__``
        does the same inline: it runs on every request.)"""
        token, bearer, user_agent, gpc = scan_header_list(
            scope["headers"], self._cookie_name, self._allow_bearer
        )
        client = ClientInfo(user_agent, self._client(scope)[0], gpc)
        session = await self.manager.load(token, client)
        session.via_bearer = bearer
        scope["session"] = session
        scope[MANAGER_SCOPE_KEY] = self.manager
        return session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        # Runs on every request: locals rather than objects, and ``_load`` written out
        # (one coroutine less per request).
        token, bearer, user_agent, gpc = scan_header_list(
            scope["headers"], self._cookie_name, self._allow_bearer
        )
        manager = self.manager
        client = scope.get("client") if self._proxies is None else self._client(scope)
        info = ClientInfo(user_agent, client[0] if client else None, gpc)
        state = _Request()
        locks = self._locks
        if (
            locks is not None
            and token is not None
            and (self._lock_all or is_under(scope["path"], self.locked))
        ):
            try:
                state.held = await locks.acquire(token)
            except REFUSED as exc:
                await send_refusal(send, refused(exc, "load"))
                return
        try:
            try:
                session = await manager.load(token, info)
            except REFUSED as exc:
                await send_refusal(send, refused_at_load(exc, manager.config, bearer=bearer))
                return
            session.via_bearer = bearer
            state.session = scope["session"] = session
            scope[MANAGER_SCOPE_KEY] = manager
            if self.csrf.applies(scope["method"], bearer):
                refusal, receive = await self._check_csrf(scope, receive, session)
                if refusal is not None:
                    await send_refusal(send, refusal)
                    return
            passive = bool(self.passive) and is_under(scope["path"], self.passive)
            if passive:
                session.close()  # checked, never committed: no touch, no cookie
            elif state.held is None and token is not None and session.record is not None:
                scope[LOCK_SCOPE_KEY] = self._relock(scope, state, token, info, bearer)
            await self.app(scope, receive, self._send_wrapper(send, state, passive, bearer))
        finally:
            if state.held is not None:  # the app raised, the client left, or nothing was sent
                await session_locks(manager).release(state.held)

    def _relock(
        self, scope: Scope, state: _Request, token: str, info: ClientInfo, bearer: bool
    ) -> Callable[[], Awaitable[Session]]:
        """What a route marked locked calls first (``LOCK_SCOPE_KEY``): take the lock, then
        load the session again under it (the first load came before the route was known)."""
        manager = self.manager

        async def relock() -> Session:
            if state.held is None:
                state.held = await session_locks(manager).acquire(token)
                fresh = await manager.load(token, info)
                fresh.via_bearer = bearer
                state.session = scope["session"] = fresh
            assert state.session is not None
            return state.session

        return relock

    def _send_wrapper(self, send: Send, state: _Request, passive: bool, bearer: bool) -> Send:
        """``send`` for the app: the commit when the response starts (its headers merged
        into the app's), then the session lock freed; after a refused commit, the app's
        body is dropped."""
        manager = self.manager

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                session = state.session
                assert session is not None
                try:
                    result = NO_CHANGE if passive else await manager.commit(session)
                except REFUSED as exc:
                    state.failed = True
                    await send_refusal(send, refused(exc, "commit"))
                    return
                update = session_headers(
                    manager.config, result, bearer=bearer, authenticated=session.user_id is not None
                )
                expires = expires_value(result, session.handle, session.expires_at)
                if update is not None or expires is not None:
                    message["headers"] = merge_headers(
                        message.get("headers", ()), update, b"cache-control", _latin1, expires
                    )
                held, state.held = state.held, None
                await send(message)
                if held is not None:  # committed: the next request may load it now
                    await session_locks(manager).release(held)
                return
            if state.failed:
                return  # the 503 is already out; drop the app's body
            await send(message)

        return send_wrapper

    async def _check_csrf(
        self, scope: Scope, receive: Receive, session: Session
    ) -> tuple[Refusal | None, Receive]:
        """The CSRF check's answer (None: the request passes), and the ``receive`` the app
        must use (a replay when the body was read to find the token field)."""
        check = self.csrf
        path: str = scope["path"]
        verdict = check.start(
            session, path, self._client(scope)[1], check.read_header_list(scope["headers"])
        )
        if isinstance(verdict, NeedBody):
            body, receive = await buffer_body(
                receive, verdict.limit, verdict.request.content_length
            )
            verdict = check.with_body(session, verdict, body)
        if verdict is None:
            return None, receive
        return check.refuse(session, verdict, scope["method"], path), receive

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake: the session is read, never written."""
        if not self._same_origin_handshake(scope):
            # Cross-site WebSocket hijacking: the browser attaches the cookie to any
            # site's handshake, so a foreign Origin is refused before the session loads.
            self.manager.emit(ev.WEBSOCKET_REJECTED, reason="origin mismatch")
            await send({"type": "websocket.close", "code": 1008})
            return
        try:
            session = await self._load(scope)
        except REFUSED as exc:
            refusal = refused(exc, "load")
            code = 1013 if refusal.status == 503 else 1008
            await send({"type": "websocket.close", "code": code})
            return
        # Read at the handshake; a WebSocket cannot deliver a new cookie afterwards, so
        # writes are refused (SessionCommittedError) rather than silently lost. A long
        # connection re-checks with ``await manager.is_active(session.handle)``.
        session.close()
        await self.app(scope, receive, send)

    def _same_origin_handshake(self, scope: Scope) -> bool:
        """The handshake's ``Origin`` against its ``Host``. ``ws``/``wss`` pages do not
        exist: the page that opened it was ``http``/``https`` on the same host."""
        origin: str | None = None
        host: str | None = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        scheme = "https" if self._client(scope)[1] in ("wss", "https") else "http"
        return self.csrf.same_origin(scheme, origin, host)
