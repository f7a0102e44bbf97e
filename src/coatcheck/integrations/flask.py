"""Flask integration: ``init_app(app, manager)`` makes ``flask.session`` a coatcheck session.

Flask asks a ``SessionInterface`` to open the session when a request starts and to save it
once the response object exists, before the WSGI server sends a byte: that is exactly the
load / commit pair of every coatcheck edge, so this module is only an adapter. It uses the
manager's sync path (no event loop) and the rules of ``coatcheck.http.edge`` for the cookie,
the token header of bearer clients, Cache-Control and the 503.

Flask's idioms keep working on top of the coatcheck ``Session``:

- ``session["k"] = v``, ``flash()`` / ``get_flashed_messages()`` (values are JSON, so a
  flashed ``(category, message)`` pair comes back as a list, which unpacks the same way);
- ``session.new`` (no stored session backed this request) and ``session.modified``
  (writes, removals and in-place changes of lists and dicts are all detected, so setting
  ``modified = True`` is accepted but never needed);
- ``session.permanent`` means what it means in Flask, a cookie that outlives the browser,
  which in coatcheck is a remember-me login (``remember_timeout``, no idle limit). It takes
  effect at a login, the only moment a persistent cookie is issued: set it before or after
  ``session.login(...)`` in the same request. On an anonymous session it changes nothing,
  so the blanket ``session.permanent = True`` some apps set on every request never turns
  the idle timeout off for visitors. Reading it gives the pending choice, else whether the
  current login is remembered.

CSRF: ``init_app`` checks every unsafe request (POST, PUT, PATCH, DELETE, ...) before the
view runs, with the rules of ``coatcheck.security.csrf`` shared by every edge: ``Sec-Fetch-Site``
and ``Origin`` first, then the token from the ``X-CSRF-Token`` header or the ``csrf_token``
form field. Templates put it in forms with ``{{ csrf_token() }}``::

    <form method="post"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">

A refused request raises ``CSRFError`` (a 403 naming the reason; an ``errorhandler(403)``
may restyle it). Views that authenticate by other means (a signed webhook) opt out with
``@csrf_exempt``; ``SessionConfig(csrf=False)`` turns the check off.

Flask's ``SESSION_COOKIE_*`` and ``PERMANENT_SESSION_LIFETIME`` settings are not read: the
cookie and the timeouts come from the manager's ``SessionConfig``, the single source of
truth for every edge. No ``secret_key`` is needed for sessions (the token is random, not
signed data).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import flask
from flask.sessions import NullSession, SessionInterface, SessionMixin
from werkzeug.exceptions import Forbidden, ServiceUnavailable, Unauthorized

from coatcheck.core.client import ClientInfo
from coatcheck.core.session import Session
from coatcheck.engine.manager import CommitResult, SessionManager
from coatcheck.http import edge
from coatcheck.security import csrf
from coatcheck.security import reauth as auth

if TYPE_CHECKING:
    from flask.wrappers import Request, Response

__all__ = [
    "AuthenticationRequired",
    "CSRFError",
    "CoatcheckSessionInterface",
    "FlaskSession",
    "UnavailableSession",
    "csrf_exempt",
    "csrf_token",
    "current_session",
    "init_app",
    "login_required",
    "require_level",
    "require_recent_auth",
]

logger = logging.getLogger("coatcheck")

EXTENSION_KEY = "coatcheck"
"""``app.extensions[EXTENSION_KEY]`` is the installed CoatcheckSessionInterface."""

F = TypeVar("F", bound=Callable[..., Any])

_UNAVAILABLE_FLAG = "coatcheck.store_unavailable"
"""Set in the environ by open_session when the store failed; read by the 503 guard."""


class FlaskSession(SessionMixin):
    """``flask.session`` under coatcheck: Flask's session protocol over a coatcheck Session.

    The mapping, ``login`` / ``logout`` / ``regenerate`` and the read-only facts
    (``user_id``, ``handle``, ``auth_at``, ...) are the coatcheck Session's, available as
    ``core`` for code shared with other edges.
    """

    def __init__(self, core: Session) -> None:
        self.core = core
        self.accessed = False
        self._permanent: bool | None = None
        self._modified = False
        self._saving = False
        self._result: CommitResult | None = None
        self._refusal: edge.Refusal = edge.UNAVAILABLE

    # -- mapping ---------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.core[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.core[key] = value

    def __delitem__(self, key: str) -> None:
        del self.core[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.core)

    def __len__(self) -> int:
        return len(self.core)

    def __contains__(self, key: object) -> bool:
        return key in self.core

    def __repr__(self) -> str:
        return f"<FlaskSession {self.core!r}>"

    # -- Flask's session attributes ----------------------------------------------------
    @property
    def new(self) -> bool:  # type: ignore[override]
        """True when no stored session backed this request."""
        return self.core.is_new

    @property
    def modified(self) -> bool:
        return self._modified or self.core.modified

    @modified.setter
    def modified(self, value: bool) -> None:
        # Accepted for compatibility; coatcheck detects changes (even in place) by itself.
        self._modified = bool(value)

    @property
    def permanent(self) -> bool:
        if self._permanent is not None:
            return self._permanent
        return self.core.remember

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self._permanent = bool(value)
        core = self.core
        if core._login and core.user_id is not None:
            # Only the remember choice changes: logging in again would reset the level
            # (and the CSRF secret) that the pending login set.
            core._remember = self._permanent

    # -- coatcheck intents and facts ---------------------------------------------------
    def login(self, user_id: str | int, *, remember: bool | None = None, level: int = 1) -> None:
        """Authenticate as ``user_id`` (new token at commit) at assurance ``level``.
        ``remember`` defaults to ``permanent`` when set in this request, else False."""
        if remember is None:
            remember = bool(self._permanent)
        self.core.login(user_id, remember=remember, level=level)

    def reauthenticate(self, *, level: int | None = None) -> None:
        """A fresh authentication of the current user (step-up): new token and
        ``auth_at``, and ``level`` if given."""
        self.core.reauthenticate(level=level)

    def logout(self) -> None:
        """End the session (record deleted, cookie cleared); later writes start a new
        anonymous one, so ``flash("Logged out")`` after ``logout()`` still shows."""
        self._permanent = None
        self.core.logout()

    def regenerate(self) -> None:
        """New token for the same session at commit (privilege change)."""
        self.core.regenerate()

    def csrf_token(self) -> str:
        """A CSRF token for a form or header, masked afresh at every call."""
        return self.core.csrf_token()

    @property
    def user_id(self) -> str | None:
        return self.core.user_id

    @property
    def is_authenticated(self) -> bool:
        return self.core.is_authenticated

    @property
    def handle(self) -> str | None:
        return self.core.handle

    @property
    def auth_at(self) -> float | None:
        return self.core.auth_at

    @property
    def remember(self) -> bool:
        return self.core.remember

    @property
    def expires_at(self) -> float | None:
        return self.core.expires_at


class UnavailableSession(NullSession):
    """Stands in for the session when the store failed at load.

    The request is answered 503 before any view runs; this object only keeps error pages,
    ``after_request`` hooks and templates that glance at the session from turning that 503
    into a 500. It reads as empty and anonymous, and it ignores writes: nothing is saved
    for a request that failed, so nothing can overwrite the real session later.
    """

    user_id = None
    handle = None
    is_authenticated = False

    def _ignore(self, *args: Any, **kwargs: Any) -> None:
        return None

    def pop(self, key: str, default: Any = None) -> Any:
        return default

    def setdefault(self, key: str, default: Any = None) -> Any:
        return default

    def popitem(self) -> tuple[str, Any]:  # type: ignore[override]
        raise KeyError("popitem(): the session is empty (store unavailable)")

    __setitem__ = __delitem__ = clear = update = _ignore  # type: ignore[assignment]


def _refusal_response(refusal: edge.Refusal = edge.UNAVAILABLE) -> Response:
    return flask.current_app.response_class(
        refusal.body, status=refusal.status, headers=list(refusal.headers)
    )


def _replace_with_refusal(response: Response, refusal: edge.Refusal = edge.UNAVAILABLE) -> None:
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
        self.manager = manager
        self.csrf = edge.CsrfGuard(manager)

    def open_session(self, app: flask.Flask, request: Request) -> SessionMixin | None:
        config = self.manager.config
        token, bearer, user_agent = edge.scan_environ(
            request.environ, config.cookie_name, config.allow_bearer
        )
        info = ClientInfo.from_raw(user_agent, request.remote_addr)
        try:
            core = self.manager.load_sync(token, info)
        except edge.REFUSED as exc:
            # Raising here would become a 500 (Flask opens the session outside its
            # handlers); the before_request hook of init_app answers instead.
            request.environ[_UNAVAILABLE_FLAG] = edge.refused(exc, "load")
            return UnavailableSession()
        core.via_bearer = bearer
        return FlaskSession(core)

    def save_session(self, app: flask.Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):
            return
        if session.accessed:
            response.vary.add("Cookie")  # Flask's own rule: this page depends on the cookie
        result = session._result
        if result is None:
            if session._saving:
                # A second save (Flask re-finalizes after an error) after a failed commit:
                # committing twice could replay a rename, so the answer stays 503.
                _replace_with_refusal(response, session._refusal)
                return
            session._saving = True
            try:
                result = self.manager.commit_sync(session.core)
            except edge.REFUSED as exc:
                session._refusal = edge.refused(exc, "commit")
                _replace_with_refusal(response, session._refusal)
                return
            session._result = result
        core = session.core
        update = edge.session_headers(
            self.manager.config,
            result,
            bearer=core.via_bearer,
            authenticated=core._user_id is not None,
        )
        if update is not None:
            merged = edge.merge_headers(
                response.headers.to_wsgi_list(), update, "cache-control", str
            )
            response.headers.clear()
            response.headers.extend(merged)


def _refuse_unavailable() -> None:
    """First before_request hook: no view runs without its session. (It looks at the
    environ, not at ``flask.session``, which would mark every response ``Vary: Cookie``.)"""
    refusal = flask.request.environ.get(_UNAVAILABLE_FLAG)
    if refusal is not None:
        raise ServiceUnavailable(response=_refusal_response(refusal))


_EXEMPT_ATTRIBUTE = "_coatcheck_csrf_exempt"


def csrf_exempt(view: F) -> F:
    """``@csrf_exempt``: unsafe requests to this view skip the CSRF check. Only for views
    that authenticate by other means (a webhook verifying a signature), since a view
    that trusts the session cookie is exactly what a forged request abuses."""
    setattr(view, _EXEMPT_ATTRIBUTE, True)
    return view


class CSRFError(Forbidden):
    """403 from the CSRF check; ``reason`` is the ``coatcheck.security.csrf.Rejection``. The body
    is the short plain text every coatcheck edge sends."""

    def __init__(self, reason: csrf.Rejection, body: bytes, headers: Any) -> None:
        self.reason = reason
        response = flask.current_app.response_class(body, status=403, headers=list(headers))
        super().__init__(description=f"CSRF check failed: {reason.message}", response=response)


def _check_csrf() -> None:
    """before_request hook: refuse a forged unsafe request before any view runs.

    Requests Flask will not route (404, 405) are left to Flask: no view runs for them.
    The form field comes from ``request.form``, parsed by werkzeug within its own size
    limits (``MAX_CONTENT_LENGTH``, ``MAX_FORM_MEMORY_SIZE``) and cached for the view.
    """
    request = flask.request
    if not csrf.is_unsafe(request.method) or request.routing_exception is not None:
        return  # (before flask.session: looking at it marks the response Vary: Cookie)
    session = flask.session
    if not isinstance(session, FlaskSession):
        return  # not ours (an UnavailableSession was answered 503 just before)
    interface: CoatcheckSessionInterface = flask.current_app.extensions[EXTENSION_KEY]
    guard = interface.csrf
    core = session.core
    if not guard.applies(request.method, request.path, core.via_bearer):
        return
    view = flask.current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, _EXEMPT_ATTRIBUTE, False):
        return
    found = guard.read_environ(request.environ)
    rejection = guard.screen(request.scheme, found)
    if rejection is None:
        token = found.token
        if guard.wants_body(found):
            value = request.form.get(guard.field)
            token = value if isinstance(value, str) else None
        rejection = guard.verify(core, token)
    if rejection is not None:
        body, headers = guard.rejected(core, rejection, request.method, request.path)
        raise CSRFError(rejection, body, headers)


def _guard_request() -> None:
    """The first before_request hook, one for both checks (Flask pays a lookup and a
    coroutine-function test per hook on every request): the 503 guard, then CSRF."""
    _refuse_unavailable()
    _check_csrf()


def csrf_token() -> str:
    """A CSRF token for the current request's session (``{{ csrf_token() }}`` in
    templates); empty while the store is unavailable (the request is a 503 anyway)."""
    session = flask.session
    if isinstance(session, FlaskSession):
        return session.csrf_token()
    return ""


def _template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token}


def init_app(app: flask.Flask, manager: SessionManager) -> CoatcheckSessionInterface:
    """Install coatcheck as ``app``'s session interface (``flask.session`` becomes a
    FlaskSession), the 503 guard, the CSRF check of unsafe requests and the
    ``csrf_token()`` template function. When the store fails as the session opens, no view
    runs and an ``errorhandler(503)`` of the app may restyle the page (without one it is
    the short plain text every edge sends). When it fails at save, the response is
    already built, so it is replaced in place by that plain 503."""
    interface = CoatcheckSessionInterface(manager)
    app.session_interface = interface
    app.extensions[EXTENSION_KEY] = interface
    app.before_request_funcs.setdefault(None, []).insert(0, _guard_request)
    app.context_processor(_template_globals)
    return interface


def current_session() -> FlaskSession:
    """``flask.session``, typed as the coatcheck session (for login, user_id, ...)."""
    session = flask.session
    if isinstance(session, FlaskSession):
        return session
    if isinstance(session, UnavailableSession):
        refusal = flask.request.environ.get(_UNAVAILABLE_FLAG, edge.UNAVAILABLE)
        raise ServiceUnavailable(response=_refusal_response(refusal))
    raise RuntimeError("coatcheck is not this app's session interface: call init_app()")


class AuthenticationRequired(Unauthorized):
    """401 from ``login_required`` / ``require_recent_auth``. ``reason`` is machine-readable
    (``login_required`` or ``reauthentication_required``); an app's ``errorhandler(401)``
    receives this exception and may, say, redirect browsers to its login form instead."""

    def __init__(self, reason: str, **detail: Any) -> None:
        self.reason = reason
        self.detail = detail
        body = json.dumps({"error": reason, **detail})
        response = flask.current_app.response_class(
            body, status=401, mimetype="application/json", headers={"Cache-Control": "no-store"}
        )
        super().__init__(description=reason, response=response)


def _guard(view: F, check: Callable[[], object]) -> F:
    """Wrap a sync or async view so that ``check`` runs first."""
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            check()
            return await view(*args, **kwargs)

        return cast(F, async_wrapper)

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def _require_login() -> FlaskSession:
    session = current_session()
    if not session.is_authenticated:
        raise AuthenticationRequired("login_required")
    return session


def login_required(view: F) -> F:
    """``@login_required``: 401 ``{"error": "login_required"}`` unless logged in."""
    return _guard(view, _require_login)


def _raise(problem: auth.AuthProblem | None) -> None:
    if problem is not None:
        raise AuthenticationRequired(problem.reason, **problem.detail)


def require_recent_auth(max_age: float) -> Callable[[F], F]:
    """``@require_recent_auth(300)``: the user must have logged in (or re-authenticated)
    within ``max_age`` seconds, as sensitive actions like a password or e-mail change
    should require (ASVS). Otherwise 401 ``{"error": "reauthentication_required",
    "max_age": ...}``, or ``login_required`` when not logged in at all."""
    if max_age <= 0:
        raise ValueError(f"max_age must be positive, got {max_age!r}")

    def check() -> None:
        interface: CoatcheckSessionInterface = flask.current_app.extensions[EXTENSION_KEY]
        core = current_session().core
        _raise(auth.recent_auth_problem(core, max_age, interface.manager.clock()))

    def decorator(view: F) -> F:
        return _guard(view, check)

    return decorator


def require_level(level: int) -> Callable[[F], F]:
    """``@require_level(2)``: the current authentication must be of assurance ``level`` or
    more (step-up); otherwise 401 ``{"error": "insufficient_auth_level", ...}``."""

    def check() -> None:
        _raise(auth.level_problem(current_session().core, level))

    def decorator(view: F) -> F:
        return _guard(view, check)

    return decorator
