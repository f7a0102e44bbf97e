"""WSGI middleware: the sync twin of ``coatcheck.asgi`` for any WSGI app.

It reads the token, loads the session with ``manager.load_sync`` (the store's own sync
client, no event loop), puts it at ``environ["coatcheck.session"]`` and commits with
``manager.commit_sync`` inside ``start_response``: a WSGI server sends nothing until the
app's first body chunk, so that is still before the headers leave, and a streamed body
costs nothing extra. Which token counts, which headers a commit sends and the 503 are the
rules of ``coatcheck.edge``, shared with the ASGI middleware.

A store failure is a short plain 503, never a traceback and never a request served with an
empty session. That holds even when the commit fails inside the app's ``start_response``
call: the real ``start_response`` gets the 503 instead, and the app's body is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from . import edge
from .client import ClientInfo
from .errors import StoreUnavailable
from .manager import SessionManager
from .model import Session

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from _typeshed import OptExcInfo

__all__ = ["ENVIRON_KEY", "SessionMiddleware", "get_session"]

logger = logging.getLogger("coatcheck")

ENVIRON_KEY = "coatcheck.session"
"""Where the middleware puts the Session in the WSGI environ."""

_UNAVAILABLE_STATUS = "503 Service Unavailable"


def get_session(environ: WSGIEnvironment) -> Session:
    """The request's Session; a clear error when the middleware is not installed."""
    try:
        session: Session = environ[ENVIRON_KEY]
    except KeyError:
        raise RuntimeError("wrap the WSGI app in coatcheck.wsgi.SessionMiddleware") from None
    return session


def _discard(data: bytes) -> None:
    """The ``write`` callable handed out once a 503 replaced the app's response."""


def _close(body: Iterable[bytes]) -> None:
    close: Callable[[], Any] | None = getattr(body, "close", None)
    if close is not None:
        close()


class _Response:
    """One request's response side: commits at the first ``start_response`` call and
    remembers the outcome for any later call (an error page replacing the headers must
    still deliver the new token) and for the body."""

    __slots__ = ("bearer", "committed", "failed", "manager", "session", "start", "update")

    def __init__(
        self, manager: SessionManager, session: Session, bearer: bool, start: StartResponse
    ) -> None:
        self.manager = manager
        self.session = session
        self.bearer = bearer
        self.start = start
        self.committed = False
        self.failed = False
        self.update: edge.SessionHeaders | None = None

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
        /,
    ) -> Callable[[bytes], object]:
        if self.failed:
            return _discard  # the 503 stands; nothing the app sends now reaches the client
        if not self.committed:
            self.committed = True
            session = self.session
            try:
                result = self.manager.commit_sync(session)
            except StoreUnavailable as exc:
                logger.warning("session store unavailable on commit: %s", exc)
                self.failed = True
                self.start(_UNAVAILABLE_STATUS, list(edge.UNAVAILABLE_HEADERS), exc_info)
                return _discard
            self.update = edge.session_headers(
                self.manager.config,
                result,
                bearer=self.bearer,
                authenticated=session._user_id is not None,
            )
        if self.update is not None:
            headers = edge.merge_headers(headers, self.update, "cache-control", str)
        return self.start(status, headers, exc_info)


class _GuardedBody:
    """The app's body, for apps that call ``start_response`` only once iterated (WSGI
    generators may): if that commit fails, the 503 body replaces the app's."""

    __slots__ = ("body", "response")

    def __init__(self, body: Iterable[bytes], response: _Response) -> None:
        self.body = body
        self.response = response

    def __iter__(self) -> Iterator[bytes]:
        response = self.response
        for chunk in self.body:
            if response.failed:
                break
            yield chunk
        if response.failed:
            yield edge.UNAVAILABLE_BODY

    def close(self) -> None:
        _close(self.body)


class SessionMiddleware:
    """``app = SessionMiddleware(app, manager=manager)``; in Flask prefer
    ``coatcheck.flask.init_app``, which makes ``flask.session`` the coatcheck session."""

    def __init__(self, app: WSGIApplication, manager: SessionManager) -> None:
        self.app = app
        self.manager = manager
        self._cookie_name = manager.config.cookie_name
        self._allow_bearer = manager.config.allow_bearer

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = edge.read_environ(environ, self._cookie_name, self._allow_bearer)
        info = ClientInfo.from_raw(request.user_agent, environ.get("REMOTE_ADDR"))
        try:
            session = self.manager.load_sync(request.token, info)
        except StoreUnavailable as exc:
            logger.warning("session store unavailable on load: %s", exc)
            start_response(_UNAVAILABLE_STATUS, list(edge.UNAVAILABLE_HEADERS))
            return [edge.UNAVAILABLE_BODY]
        session._via_bearer = request.bearer
        environ[ENVIRON_KEY] = session

        response = _Response(self.manager, session, request.bearer, start_response)
        body = self.app(environ, response.start_response)
        if response.failed:
            _close(body)
            return [edge.UNAVAILABLE_BODY]
        if response.committed:
            return body  # the common case: no wrapper, file_wrapper and len() stay usable
        return _GuardedBody(body, response)
