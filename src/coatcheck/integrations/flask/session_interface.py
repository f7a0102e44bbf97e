"""The ``SessionInterface`` that makes ``flask.session`` a coatcheck session.

Flask asks a ``SessionInterface`` to open the session when a request starts and to save it
once the response object exists, before the WSGI server sends a byte: that is exactly the
load / commit pair of every coatcheck edge, so this module is only an adapter. It uses the
manager's sync path (no event loop) and the rules of ``coatcheck.http`` for the token, the
cookie or the token header of bearer clients, Cache-Control and the refusals.

A store failure while the session opens cannot be answered from ``open_session`` (Flask
would turn the exception into a 500): the refusal is noted in the environ and answered by
the first ``before_request`` hook, so no view runs without its session.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

import flask
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.exceptions import ServiceUnavailable

from coatcheck.core.client import ClientInfo
from coatcheck.core.session import Session
from coatcheck.engine.locking import SessionLocks, session_locks
from coatcheck.engine.manager import CommitResult, SessionManager
from coatcheck.http.csrf_check import CsrfCheck
from coatcheck.http.forwarded import Proxies
from coatcheck.http.headers import expires_value, header_changes, session_headers
from coatcheck.http.pageviews import facts_from_environ, recorder_for
from coatcheck.http.refusals import REFUSED, UNAVAILABLE, Refusal, refused, refused_at_load
from coatcheck.http.transport import scan_environ
from coatcheck.integrations.flask.locking import (
    HELD_KEY,
    marked_endpoints,
    release,
    routed_to_marked,
)
from coatcheck.integrations.flask.session import FlaskSession, UnavailableSession
from coatcheck.privacy import minimise

if TYPE_CHECKING:
    from flask.wrappers import Request, Response

__all__ = ["EXTENSION_KEY", "CoatcheckSessionInterface", "current_session"]

EXTENSION_KEY: Final = "coatcheck"
"""``app.extensions[EXTENSION_KEY]`` is the installed CoatcheckSessionInterface."""

UNAVAILABLE_FLAG: Final = "coatcheck.store_unavailable"
"""Set in the environ by open_session when the store failed; read by the 503 guard."""

STARTED_KEY: Final = "coatcheck.started"
"""Set in the environ by open_session when analytics is on: (clock time, perf counter)."""


def refusal_response(refusal: Refusal = UNAVAILABLE) -> Response:
    """``refusal`` as a Flask response (for ``HTTPException(response=...)``)."""
    return flask.current_app.response_class(
        refusal.body, status=refusal.status, headers=list(refusal.headers)
    )


def _replace_with_refusal(response: Response, refusal: Refusal) -> None:
    """Turn the app's response into ``refusal`` (503, 429, 403) in place (Flask returns
    this object)."""
    close = getattr(response.response, "close", None)
    if close is not None:
        close()  # e.g. the file of send_file: it will never be sent
    response.status_code = refusal.status
    response.headers.clear()
    response.headers.extend(refusal.headers)
    response.set_data(refusal.body)


class CoatcheckSessionInterface(SessionInterface):
    """Opens with ``manager.load_sync`` and saves with ``manager.commit_sync``."""

    null_session_class = UnavailableSession
    pickle_based = False

    def __init__(self, manager: SessionManager) -> None:
        self.manager = minimise.install(manager)
        self.csrf = CsrfCheck(manager)
        self.proxies = Proxies.of(manager.config)
        """``SessionConfig.trusted_proxies``: who the client is behind them (None: none)."""
        self.recorder = recorder_for(manager)
        """The analytics page-view recorder (``SessionConfig.analytics_url``), or None."""
        self.locks: SessionLocks | None = (
            session_locks(manager) if manager.config.lock_sessions else None
        )
        """The session locks, when a request may need one (``lock_sessions``, or a view
        marked ``@locked_session``, found at the first request)."""
        self._marked: frozenset[str] | None = None

    def _wants_lock(self, app: flask.Flask, request: Request) -> SessionLocks | None:
        """The locks, when this request must hold its session's."""
        marked = self._marked
        if marked is None:
            marked = self._marked = marked_endpoints(app)
            if marked and self.locks is None:
                self.locks = session_locks(self.manager)  # MissingCapability, if so
        if self.manager.config.lock_sessions or (marked and routed_to_marked(app, request, marked)):
            return self.locks
        return None

    def open_session(self, app: flask.Flask, request: Request) -> SessionMixin | None:
        config = self.manager.config
        token, bearer, user_agent, gpc = scan_environ(
            request.environ, config.cookie_name, config.allow_bearer
        )
        address = request.remote_addr
        if self.proxies is not None:  # behind trusted proxies: X-Forwarded-For decides
            address = self.proxies.from_environ(request.environ)[0]
        info = ClientInfo.from_raw(user_agent, address, gpc)
        if self.recorder is not None:
            request.environ[STARTED_KEY] = (self.manager.clock(), time.perf_counter())
        locks = self._wants_lock(app, request) if token is not None else None
        try:
            if locks is not None:
                held = locks.acquire_sync(token)
                if held is not None:
                    request.environ[HELD_KEY] = held
            core = self.manager.load_sync(token, info)
        except REFUSED as exc:
            # Raising here would become a 500 (Flask opens the session outside its
            # handlers); the before_request hook of init_app answers instead.
            request.environ[UNAVAILABLE_FLAG] = refused_at_load(exc, config, bearer=bearer)
            return UnavailableSession()
        core.via_bearer = bearer
        return FlaskSession(core)

    def save_session(self, app: flask.Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):
            return
        if session.accessed:
            response.vary.add("Cookie")  # Flask's own rule: this page depends on the cookie
        try:
            result = self._commit_once(session, response)
        finally:
            if self.locks is not None:  # committed: the next request may load it now
                release(self.locks, flask.request.environ)
        if result is None:
            return
        core = session.core
        if self.recorder is not None:
            self._record(core, response)
        update = session_headers(
            self.manager.config,
            result,
            bearer=core.via_bearer,
            authenticated=core.user_id is not None,
        )
        expires = expires_value(result, core.handle, core.expires_at)
        headers = response.headers  # edited in place: rebuilding them all cost more
        drop, add = header_changes(update, expires, lambda: "Cache-Control" in headers)
        if drop:
            del headers["Cache-Control"]
        for name, value in add:
            headers.add(name, value)

    def _record(self, core: Session, response: Response) -> None:
        """Hand the request's page view and tracked events to the analytics recorder."""
        assert self.recorder is not None
        request = flask.request
        started, began = request.environ.get(STARTED_KEY, (self.manager.clock(), None))
        duration = None if began is None else time.perf_counter() - began
        rule = request.url_rule.rule if request.url_rule is not None else None
        facts = facts_from_environ(request.environ, response.status_code, started, duration, rule)
        self.recorder.after_response(core, facts)

    def _commit_once(self, session: FlaskSession, response: Response) -> CommitResult | None:
        """The commit's result; None when it was refused and ``response`` now says so.
        Flask may save twice (it re-finalizes after an error): the first outcome stands."""
        if session._result is not None:
            return session._result
        if session._saving:
            # A second save after a failed commit (Flask saves again the error response
            # it built): committing twice could replay a rename, so the first outcome
            # stands. A refusal stays the refusal; the app's own error (a value that is
            # not JSON) stays the 500 Flask answered, logged with the key it names.
            if session._refusal is not None:
                _replace_with_refusal(response, session._refusal)
            return None
        session._saving = True
        try:
            session._result = self.manager.commit_sync(session.core)
        except REFUSED as exc:
            session._refusal = refused(exc, "commit")
            _replace_with_refusal(response, session._refusal)
            return None
        return session._result


def refuse_unavailable() -> None:
    """First before_request hook: no view runs without its session. (It looks at the
    environ, not at ``flask.session``, which would mark every response ``Vary: Cookie``.)"""
    refusal = flask.request.environ.get(UNAVAILABLE_FLAG)
    if refusal is not None:
        raise ServiceUnavailable(response=refusal_response(refusal))


def installed_interface() -> CoatcheckSessionInterface:
    """The current app's interface, put there by ``init_app``."""
    interface: CoatcheckSessionInterface = flask.current_app.extensions[EXTENSION_KEY]
    return interface


def current_session() -> FlaskSession:
    """``flask.session``, typed as the coatcheck session (for login, user_id, ...)."""
    session = flask.session
    if isinstance(session, FlaskSession):
        return session
    if isinstance(session, UnavailableSession):
        refusal = flask.request.environ.get(UNAVAILABLE_FLAG, UNAVAILABLE)
        raise ServiceUnavailable(response=refusal_response(refusal))
    raise RuntimeError("coatcheck is not this app's session interface: call init_app()")
