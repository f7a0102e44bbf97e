"""Two small middlewares around Django's own SessionMiddleware.

``StoreUnavailableMiddleware`` (first in ``MIDDLEWARE``) answers the engine's refusals as
every coatcheck edge does: a short 503 when the session store fails, 429 for a client
throttled for guessing tokens, 403 for a login over ``max_sessions_per_user`` in deny mode;
wherever they are raised: in a view (``process_exception``), or in another middleware such
as SessionMiddleware saving at the end of the request. Django turns an exception raised
inside a middleware into a 500 response before any outer middleware sees it, so the
refusal is noted on the request from the ``got_request_exception`` signal (the hook
Django's own test client uses to see such exceptions) and the 500 is replaced. Continuing
with an empty session instead could later overwrite the real one.

``SessionMiddleware`` is Django's, plus the client facts (user agent, truncated IP) that
coatcheck keeps for a "your devices" list; Django's SessionStore never sees the request.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from coatcheck.core.client import ClientInfo
from coatcheck.http.headers import CLEAR_ALL, CLEAR_KEEP_COOKIES, EXPIRES_HEADER, deadline_value
from coatcheck.http.refusals import REFUSED, UNAVAILABLE, Refusal, refused
from coatcheck.integrations.django.conf import get_manager
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
            return _response(refused(exception, "request"))
        return None

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        exc = getattr(request, _REFUSED, None)
        if exc is not None:
            return _response(refused(exc, "request (instead of a 500)"))
        return response


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's SessionMiddleware that also tells coatcheck which device is calling, and
    gives responses the headers every coatcheck edge sends:

    - ``Cache-Control: no-store`` on a response that sets the session cookie (it carries a
      credential) or belongs to a logged-in session (when the view set no Cache-Control);
    - ``Clear-Site-Data`` after a logout (``clear_site_data``, on by default);
    - no cookie with a token a concurrent request rotated out (``rotation_interval``);
    - ``X-Session-Expires``, the stored session's deadline, when the request opened it.

    ``REMOTE_ADDR`` is used as is: behind a proxy, set it from the forwarded header in a
    middleware placed before this one. The IP is truncated before it is kept.
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        session = getattr(request, "session", None)
        if not isinstance(session, SessionStore):
            return super().process_response(request, response)
        # Read before the save, which drops the cached state (reading after would load it
        # again from the store).
        logged_in = session.accessed and AUTH_USER_KEY in session
        response = super().process_response(request, response)
        _harden(session, response, logged_in)
        return response

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        session = request.session
        if isinstance(session, SessionStore):
            session.client = ClientInfo.from_raw(
                request.META.get("HTTP_USER_AGENT"), request.META.get("REMOTE_ADDR")
            )


def _harden(session: SessionStore, response: HttpResponse, logged_in: bool) -> None:
    name = settings.SESSION_COOKIE_NAME
    if session.stale_token:
        response.cookies.pop(name, None)
    morsel = response.cookies.get(name)
    if morsel is not None or (logged_in and not response.has_header("Cache-Control")):
        response["Cache-Control"] = "no-store"  # a credential, or a personal page
    if session.ended and get_manager().config.clear_site_data:
        kept = morsel is not None and morsel.value != ""  # a new anonymous session (a flash)
        response["Clear-Site-Data"] = CLEAR_KEEP_COOKIES if kept else CLEAR_ALL
    deadline = session.expires_at if session.accessed else None
    if deadline is not None:
        response[EXPIRES_HEADER] = deadline_value(deadline)
