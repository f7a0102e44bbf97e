"""WSGI middleware: the sync twin of ``coatcheck.asgi`` for any WSGI app.

It reads the token, loads the session with ``manager.load_sync`` (the store's own sync
client, no event loop), puts it at ``environ["coatcheck.session"]`` and commits with
``manager.commit_sync`` inside ``start_response``: a WSGI server sends nothing until the
app's first body chunk, so that is still before the headers leave, and a streamed body
costs nothing extra. Which token counts, which headers a commit sends, the refusals and
the CSRF verdict are the rules of ``coatcheck.http``, shared with the ASGI middleware; this
module only translates the environ and ``start_response`` to and from them.

A store failure is a short plain 503, never a traceback and never a request served with an
empty session. That holds even when the commit fails inside the app's ``start_response``
call: the real ``start_response`` gets the 503 instead, and the app's body is dropped.

Unsafe requests pass the CSRF check first, as in ``coatcheck.asgi``: ``Sec-Fetch-Site`` and
``Origin``, then the token from the ``X-CSRF-Token`` header or the ``csrf_token`` field of a
form, for which the body (at most ``forms.MAX_FORM_BODY``) is read and put back as
``wsgi.input`` for the app. A refused request is a plain 403; the app does not run.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from coatcheck.core.client import ClientInfo
from coatcheck.core.session import Session
from coatcheck.engine.locking import Held, SessionLocks, session_locks
from coatcheck.engine.manager import SessionManager
from coatcheck.http import gpc
from coatcheck.http.csrf_check import CsrfCheck, NeedBody
from coatcheck.http.forms import content_length
from coatcheck.http.forwarded import Proxies
from coatcheck.http.headers import (
    SessionHeaders,
    expires_value,
    merge_headers,
    session_headers,
)
from coatcheck.http.pageviews import facts_from_environ, recorder_for
from coatcheck.http.paths import is_under, prefixes
from coatcheck.http.refusals import REFUSED, Refusal, refused, refused_at_load
from coatcheck.http.transport import scan_environ
from coatcheck.privacy import minimise

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from _typeshed import OptExcInfo

__all__ = ["ENVIRON_KEY", "SessionMiddleware", "get_session", "gpc_app"]

logger = logging.getLogger("coatcheck")

ENVIRON_KEY = "coatcheck.session"
"""Where the middleware puts the Session in the WSGI environ."""


def get_session(environ: WSGIEnvironment) -> Session:
    """The request's Session; a clear error when the middleware is not installed."""
    try:
        session: Session = environ[ENVIRON_KEY]
    except KeyError:
        raise RuntimeError("wrap the WSGI app in coatcheck.wsgi.SessionMiddleware") from None
    return session


def gpc_app(last_update: str = gpc.LAST_UPDATE) -> WSGIApplication:
    """A WSGI app answering ``/.well-known/gpc.json`` (mount it at that path, or call it
    from the app's own routing): this site honours Global Privacy Control."""
    answer = gpc.gpc_answer(last_update)  # checked now, at start-up

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(answer.wsgi_status, list(answer.headers))
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [answer.body]

    return app


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

    __slots__ = (
        "bearer",
        "committed",
        "expires",
        "failed",
        "lease",
        "manager",
        "session",
        "start",
        "update",
    )

    def __init__(
        self,
        manager: SessionManager,
        session: Session,
        bearer: bool,
        start: StartResponse,
        lease: _Lease | None = None,
    ) -> None:
        self.manager = manager
        self.session = session
        self.bearer = bearer
        self.start = start
        self.lease = lease
        self.committed = False
        self.failed: Refusal | None = None
        self.update: SessionHeaders | None = None
        self.expires: str | None = None

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
            except REFUSED as exc:
                refusal = refused(exc, "commit")
                self.failed = refusal
                self.start(refusal.wsgi_status, list(refusal.headers), exc_info)
                return _discard
            finally:
                if self.lease is not None:  # committed (or refused): the next may load
                    self.lease.release()
            self.update = session_headers(
                self.manager.config,
                result,
                bearer=self.bearer,
                authenticated=session.user_id is not None,
            )
            self.expires = expires_value(result, session.handle, session.expires_at)
        if self.update is not None or self.expires is not None:
            headers = merge_headers(headers, self.update, "cache-control", str, self.expires)
        return self.start(status, headers, exc_info)


class _Lease:
    """The session lock a request holds, freed once: after the commit, or when the app
    raised or its body was closed without a commit (the client went away)."""

    __slots__ = ("held", "locks")

    def __init__(self, locks: SessionLocks, held: Held) -> None:
        self.locks = locks
        self.held: Held | None = held

    def release(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            self.locks.release_sync(held)


class _GuardedBody:
    """The app's body, for apps that call ``start_response`` only once iterated (WSGI
    generators may): if that commit fails, the 503 body replaces the app's. Closing it
    frees the session lock, if the commit did not already."""

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
            yield response.failed.body

    def close(self) -> None:
        try:
            _close(self.body)
        finally:
            if self.response.lease is not None:
                self.response.lease.release()


def buffer_body(environ: WSGIEnvironment, limit: int) -> bytes | None:
    """Read the request body (None when it exceeds ``limit`` bytes) and put it back as
    ``wsgi.input``, so the app reads the same body. Without a Content-Length the body is
    read only when the server says the stream ends (``wsgi.input_terminated``)."""
    length = content_length(environ.get("CONTENT_LENGTH"))
    stream = environ["wsgi.input"]
    if length is not None:
        if length > limit:
            return None
        body: bytes = stream.read(length) if length else b""
    elif environ.get("wsgi.input_terminated"):
        body = stream.read(limit + 1)
        if len(body) > limit:
            return None
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


class SessionMiddleware:
    """``app = SessionMiddleware(app, manager=manager)``; in Flask prefer
    ``coatcheck.flask.init_app``, which makes ``flask.session`` the coatcheck session.

    ``csrf_exempt``: paths (``["/webhooks"]``, each with the paths below it) whose unsafe
    requests skip the CSRF check, for endpoints that authenticate by other means (a signed
    payload). ``locked``: paths whose requests of one session run one at a time
    (``coatcheck.engine.locking``; ``SessionConfig.lock_sessions`` locks every path): the
    lock is taken before the load and freed after the commit, or when the app raised or
    its body was closed; not had within ``lock_timeout``, a 409 with ``Retry-After``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        manager: SessionManager,
        *,
        csrf_exempt: Iterable[str] = (),
        locked: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.manager = minimise.install(manager)
        self.csrf = CsrfCheck(manager, csrf_exempt)
        self.locked = prefixes(locked)
        self._lock_all = manager.config.lock_sessions
        # Built now, so a store that cannot lock fails when the app starts.
        self._locks = session_locks(manager) if self._lock_all or self.locked else None
        self._cookie_name = manager.config.cookie_name
        self._allow_bearer = manager.config.allow_bearer
        self._proxies = Proxies.of(manager.config)
        self.recorder = recorder_for(manager)
        """The analytics page-view recorder (``SessionConfig.analytics_url``), or None."""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        recorder = self.recorder
        if recorder is None:
            return self._handle(environ, start_response)
        session_box: list[Session] = []
        started, began = self.manager.clock(), time.perf_counter()

        def recording_start(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            write = start_response(status, headers, exc_info)
            session = environ.get(ENVIRON_KEY)
            if isinstance(session, Session) and not session_box:
                session_box.append(session)
                code = int(status.split(" ", 1)[0]) if status[:3].isdigit() else None
                facts = facts_from_environ(environ, code, started, time.perf_counter() - began)
                recorder.after_response(session, facts)
            return write

        return self._handle(environ, recording_start)

    def _handle(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The client's token and address; the session's lock when one is wanted."""
        # Runs on every request: locals rather than objects where the edge allows.
        token, bearer, user_agent, gpc = scan_environ(
            environ, self._cookie_name, self._allow_bearer
        )
        address = environ.get("REMOTE_ADDR")
        if self._proxies is not None:  # behind trusted proxies: X-Forwarded-For decides
            address = self._proxies.from_environ(environ)[0]
        info = ClientInfo(user_agent, address, gpc)
        locks = self._locks
        if locks is None or token is None or not (self._lock_all or self._locked(environ)):
            return self._serve(environ, start_response, token, bearer, info, None)
        try:
            held = locks.acquire_sync(token)
        except REFUSED as exc:
            refusal = refused(exc, "load")
            start_response(refusal.wsgi_status, list(refusal.headers))
            return [refusal.body]
        if held is None:  # a malformed token: nothing to lock
            return self._serve(environ, start_response, token, bearer, info, None)
        lease = _Lease(locks, held)
        try:
            body = self._serve(environ, start_response, token, bearer, info, lease)
        except BaseException:
            lease.release()
            raise
        if not isinstance(body, _GuardedBody):
            lease.release()  # refused, committed or failed: nothing left to commit
        return body

    def _locked(self, environ: WSGIEnvironment) -> bool:
        path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        return bool(self.locked) and is_under(path, self.locked)

    def _serve(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        token: str | None,
        bearer: bool,
        info: ClientInfo,
        lease: _Lease | None,
    ) -> Iterable[bytes]:
        """Load, CSRF, the app, the commit (the session's lock, if any, is held)."""
        try:
            session = self.manager.load_sync(token, info)
        except REFUSED as exc:
            refusal = refused_at_load(exc, self.manager.config, bearer=bearer)
            start_response(refusal.wsgi_status, list(refusal.headers))
            return [refusal.body]
        session.via_bearer = bearer
        environ[ENVIRON_KEY] = session

        if self.csrf.applies(str(environ.get("REQUEST_METHOD", "GET")), bearer):
            forbidden = self._check_csrf(environ, session)
            if forbidden is not None:
                start_response(forbidden.wsgi_status, list(forbidden.headers))
                return [forbidden.body]

        response = _Response(self.manager, session, bearer, start_response, lease)
        body = self.app(environ, response.start_response)
        if response.failed:
            _close(body)
            return [response.failed.body]
        if response.committed:
            return body  # the common case: no wrapper, file_wrapper and len() stay usable
        return _GuardedBody(body, response)

    def _check_csrf(self, environ: WSGIEnvironment, session: Session) -> Refusal | None:
        """The CSRF check's answer; None lets the request through."""
        check = self.csrf
        path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        scheme = str(environ.get("wsgi.url_scheme", "http"))
        if self._proxies is not None:
            scheme = self._proxies.from_environ(environ)[1]
        verdict = check.start(session, path, scheme, check.read_environ(environ))
        if isinstance(verdict, NeedBody):
            verdict = check.with_body(session, verdict, buffer_body(environ, verdict.limit))
        if verdict is None:
            return None
        return check.refuse(session, verdict, str(environ.get("REQUEST_METHOD")), path)
