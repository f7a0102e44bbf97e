"""Two small middlewares around Django's own SessionMiddleware.

``StoreUnavailableMiddleware`` (first in ``MIDDLEWARE``) answers a short 503 when the
session store fails, wherever that happens: in a view (``process_exception``), or in
another middleware such as SessionMiddleware saving at the end of the request. Django turns
an exception raised inside a middleware into a 500 response before any outer middleware
sees it, so the failure is noted on the request from the ``got_request_exception`` signal
(the hook Django's own test client uses to see such exceptions) and the 500 is replaced.
Continuing with an empty session instead could later overwrite the real one.

``SessionMiddleware`` is Django's, plus the client facts (user agent, truncated IP) that
coatcheck keeps for a "your devices" list; Django's SessionStore never sees the request.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from ..client import ClientInfo
from ..edge import UNAVAILABLE_BODY, UNAVAILABLE_HEADERS, UNAVAILABLE_STATUS
from ..errors import StoreUnavailable
from .store import SessionStore

logger = logging.getLogger("coatcheck")

_FAILED = "_coatcheck_store_unavailable"


def unavailable_response() -> HttpResponse:
    """The 503 every coatcheck edge sends: plain, short, never cached, retry soon."""
    response = HttpResponse(UNAVAILABLE_BODY, status=UNAVAILABLE_STATUS)
    for name, value in UNAVAILABLE_HEADERS:
        response[name] = value
    return response


def _note_store_failure(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Receiver of got_request_exception: runs inside Django's ``except`` block, so the
    exception being handled is the one that is turning into a 500."""
    if request is not None and isinstance(sys.exc_info()[1], StoreUnavailable):
        setattr(request, _FAILED, True)


class StoreUnavailableMiddleware(MiddlewareMixin):
    """Put first in ``MIDDLEWARE``: a failing session store becomes a 503, never a 500."""

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)
        got_request_exception.connect(
            _note_store_failure, dispatch_uid="coatcheck.django.store_unavailable"
        )

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, StoreUnavailable):
            logger.warning("session store unavailable: %s", exception)
            return unavailable_response()
        return None

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if getattr(request, _FAILED, False):
            logger.warning("session store unavailable; answered 503 instead of 500")
            return unavailable_response()
        return response


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's SessionMiddleware that also tells coatcheck which device is calling.

    ``REMOTE_ADDR`` is used as is: behind a proxy, set it from the forwarded header in a
    middleware placed before this one. The IP is truncated before it is kept.
    """

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        session = request.session
        if isinstance(session, SessionStore):
            session.client = ClientInfo.from_raw(
                request.META.get("HTTP_USER_AGENT"), request.META.get("REMOTE_ADDR")
            )
