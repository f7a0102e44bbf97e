"""Two small middlewares around Django's own SessionMiddleware.

``StoreUnavailableMiddleware`` (first in ``MIDDLEWARE``) answers the engine's refusals as
every coatcheck edge does: a short 503 when the session store fails, 429 for a client
throttled for guessing tokens, 403 for a login over ``max_sessions_per_user`` in deny mode;
wherever they are raised: in a view (``process_exception``), or in another middleware such
as SessionMiddleware saving at the end of the request. Django turns an exception raised
inside a middleware into a 500 response before any outer middleware sees it, so the
refusal is noted on the request from the ``got_request_exception`` signal (the hook
Django's own test client uses to see such exceptions) and the 500 is replaced. Continuing
with an empty session instead could later overwrite the real one. A refusal that replaces
a response still carries the session's new key when the request had already moved it
(``cycle_key()`` renames at once): the old key no longer works.

``SessionMiddleware`` also takes the session's lock before the view when ``lock_sessions``
is set (``coatcheck.integrations.django.locking``; ``@locked_session`` marks single
views), and frees it after the save.

``SessionMiddleware`` is Django's, plus the client facts (user agent, truncated IP) that
coatcheck keeps for a "your devices" list; Django's SessionStore never sees the request.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from coatcheck.analytics.requests import prefers_html
from coatcheck.core.client import ClientInfo
from coatcheck.core.session import Session
from coatcheck.engine.manager import SessionManager
from coatcheck.errors import CoatcheckError, Throttled
from coatcheck.http.forwarded import Proxies
from coatcheck.http.headers import CLEAR_ALL, CLEAR_KEEP_COOKIES, EXPIRES_HEADER, deadline_value
from coatcheck.http.pageviews import facts_from_environ, recorder_for
from coatcheck.http.refusals import REFUSED, UNAVAILABLE, Refusal, refused
from coatcheck.http.transport import gpc_signal
from coatcheck.integrations.django.conf import get_manager
from coatcheck.integrations.django.locking import SEEN_ATTR, release_lock, take_lock
from coatcheck.integrations.django.store import AUTH_USER_KEY, SessionStore

logger = logging.getLogger("coatcheck")

_REFUSED = "_coatcheck_refused"


def _response(refusal: Refusal) -> HttpResponse:
    response = HttpResponse(refusal.body, status=refusal.status)
    for name, value in refusal.headers:
        response[name] = value
    return response


def unavailable_response() -> HttpResponse:
    """The 503 every coatcheck edge sends: plain, short, never cached, retry soon."""
    return _response(UNAVAILABLE)


def _note_refusal(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Receiver of got_request_exception: runs inside Django's ``except`` block, so the
    exception being handled is the one that is turning into a 500."""
    exc = sys.exc_info()[1]
    if request is not None and isinstance(exc, REFUSED):
        setattr(request, _REFUSED, exc)


class StoreUnavailableMiddleware(MiddlewareMixin):
    """Put first in ``MIDDLEWARE``: a failing store becomes a 503, a throttled client a
    429, a login over the session limit a 403; never a 500."""

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)
        got_request_exception.connect(_note_refusal, dispatch_uid="coatcheck.django.refusal")

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, REFUSED):
            return _refused(request, exception, "request")
        return None

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        exc = getattr(request, _REFUSED, None)
        if exc is not None:
            answer = _refused(request, exc, "request (instead of a 500)")
            _deliver_moved_key(request, answer)
            return answer
        return response


def _deliver_moved_key(request: HttpRequest, response: HttpResponse) -> None:
    """The refusal replaces a response whose save failed, but the session may already
    have moved to a new key earlier in the request (``cycle_key()`` at a login that the
    session limit then refused, or before the store failed): the old key is dead, so the
    refusal still carries the new one, or the visitor would lose the session."""
    session = getattr(request, "session", None)
    name = settings.SESSION_COOKIE_NAME
    if not isinstance(session, SessionStore) or session.stale_token:
        return
    key = session.session_key
    if key is None or key == request.COOKIES.get(name):
        return
    try:  # the session's own expiry (set_expiry), when the store can still be read
        max_age = None if session.get_expire_at_browser_close() else session.get_expiry_age()
    except REFUSED:
        max_age = None if settings.SESSION_EXPIRE_AT_BROWSER_CLOSE else settings.SESSION_COOKIE_AGE
    response.set_cookie(
        name,
        key,
        max_age=max_age,
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=bool(settings.SESSION_COOKIE_SECURE),
        httponly=bool(settings.SESSION_COOKIE_HTTPONLY),
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )


def _refused(request: HttpRequest, exc: CoatcheckError, when: str) -> HttpResponse:
    """The refusal of ``exc``. The throttle refuses only a token that opened nothing, so
    its 429 also deletes that session cookie, as the other edges do."""
    response = _response(refused(exc, when))
    name = settings.SESSION_COOKIE_NAME
    if isinstance(exc, Throttled) and name in request.COOKIES:
        response.delete_cookie(
            name,
            path=settings.SESSION_COOKIE_PATH,
            domain=settings.SESSION_COOKIE_DOMAIN,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
    return response


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's SessionMiddleware that also tells coatcheck which device is calling, and
    gives responses the headers every coatcheck edge sends:

    - ``Cache-Control: no-store`` on a response that sets the session cookie (it carries a
      credential) or belongs to a logged-in session (when the view set no Cache-Control);
    - ``Clear-Site-Data`` after a logout (``clear_site_data``, on by default);
    - no cookie with a token a concurrent request rotated out (``rotation_interval``);
    - ``X-Session-Expires``, the stored session's deadline, when the request opened it.

    The client's address is ``REMOTE_ADDR``, or, when that peer is one of
    ``trusted_proxies`` (``COATCHECK_CONFIG``), the nearest untrusted hop of
    ``X-Forwarded-For``: what the unknown-token throttle counts against. The IP is
    truncated before it is kept.
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        try:
            session = getattr(request, "session", None)
            if not isinstance(session, SessionStore):
                return super().process_response(request, response)
            # Read before the save, which drops the cached state (reading after would load
            # it again from the store).
            logged_in = session.accessed and AUTH_USER_KEY in session
            recording = getattr(request, "_coatcheck_started", None) is not None
            # A session the view read is recorded as it is now (the save drops its state);
            # one it never read is loaded only after Django's middleware is done with the
            # response, so recording adds no ``Vary: Cookie`` and no save.
            core = _core(session) if recording and session.accessed else None
            try:
                response = super().process_response(request, response)
            except REFUSED as exc:
                # The save refused (a session over max_data_bytes, a store down): answered
                # here, as every edge does, before Django could log it as a 500's traceback.
                answer = _refused(request, exc, "commit")
                _deliver_moved_key(request, answer)
                return answer
            _harden(session, response, logged_in)
            if recording:
                if core is None and prefers_html(request.META.get("HTTP_ACCEPT")):
                    core = _core(session)
                if core is not None:
                    _record(request, response, core)
            return response
        finally:
            release_lock(request)  # saved (or failed): the next request may load it

    _proxies_of: tuple[SessionManager, Proxies | None] | None = None

    def _proxies(self, manager: SessionManager) -> Proxies | None:
        """The trusted proxies of ``manager``, resolved once per manager."""
        cached = self._proxies_of
        if cached is None or cached[0] is not manager:
            cached = self._proxies_of = (manager, Proxies.of(manager.config))
        return cached[1]

    def process_request(self, request: HttpRequest) -> HttpResponse | None:  # type: ignore[override]
        manager = get_manager()
        if recorder_for(manager) is not None:
            request._coatcheck_started = (manager.clock(), time.perf_counter())  # type: ignore[attr-defined]
        super().process_request(request)
        session = request.session
        setattr(request, SEEN_ATTR, True)
        if isinstance(session, SessionStore):
            meta = request.META
            address = meta.get("REMOTE_ADDR")
            proxies = self._proxies(manager)
            if proxies is not None:
                address = proxies.from_environ(meta)[0]
            session.client = ClientInfo.from_raw(
                meta.get("HTTP_USER_AGENT"), address, gpc_signal(meta.get("HTTP_SEC_GPC"))
            )
            if manager.config.lock_sessions:
                return take_lock(request)  # a 409 / 503 instead of the view, or None
        return None


def _core(session: SessionStore) -> Session | None:
    """The coatcheck session inside ``session``; None when the store is down (the 503 path
    answers, and nothing is recorded)."""
    try:
        return session.core
    except REFUSED:
        return None


def _record(request: HttpRequest, response: HttpResponseBase, core: Session) -> None:
    """Hand the request's page view and tracked events to the analytics recorder."""
    recorder = recorder_for(get_manager())
    if recorder is None:
        return
    started, began = request._coatcheck_started  # type: ignore[attr-defined]
    match = getattr(request, "resolver_match", None)
    template = getattr(match, "route", None) or None
    facts = facts_from_environ(
        request.META, response.status_code, started, time.perf_counter() - began, template
    )
    recorder.after_response(core, facts)


def _harden(session: SessionStore, response: HttpResponse, logged_in: bool) -> None:
    name = settings.SESSION_COOKIE_NAME
    if session.stale_token:
        response.cookies.pop(name, None)
    morsel = response.cookies.get(name)
    if morsel is not None and session.session_key is None:
        # set_expiry() to a time gone by ended the session at the save, after Django's
        # middleware had decided to send the key (it would send the value "None").
        response.delete_cookie(
            name,
            path=settings.SESSION_COOKIE_PATH,
            domain=settings.SESSION_COOKIE_DOMAIN,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
        morsel = response.cookies.get(name)
    if morsel is not None or (logged_in and not response.has_header("Cache-Control")):
        response["Cache-Control"] = "no-store"  # a credential, or a personal page
    if session.ended and get_manager().config.clear_site_data:
        kept = morsel is not None and morsel.value != ""  # a new anonymous session (a flash)
        response["Clear-Site-Data"] = CLEAR_KEEP_COOKIES if kept else CLEAR_ALL
    deadline = session.expires_at if session.accessed else None
    if deadline is not None:
        response[EXPIRES_HEADER] = deadline_value(deadline)
