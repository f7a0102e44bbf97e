"""CSRF for Flask: every unsafe request is checked before its view runs.

The check is ``coatcheck.http.csrf_check``'s, shared by every edge: ``Sec-Fetch-Site`` and
``Origin`` first, then the token from the ``X-CSRF-Token`` header or the ``csrf_token`` form
field. This module only translates Flask's request into it and the verdict into
``CSRFError``. The form field comes from ``request.form``, parsed by werkzeug within the
app's own limits (``MAX_CONTENT_LENGTH``, ``MAX_FORM_MEMORY_SIZE``) and cached for the
view, so no body is buffered twice. Views that authenticate by other means (a signed
webhook) opt out with ``@csrf_exempt``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import flask
from werkzeug.exceptions import Forbidden

from coatcheck.http.csrf_check import CsrfCheck, NeedBody
from coatcheck.http.forwarded import Proxies
from coatcheck.integrations.flask.session import FlaskSession
from coatcheck.security.csrf import Rejection

__all__ = ["CSRFError", "check_csrf", "csrf_exempt", "csrf_token"]

F = TypeVar("F", bound=Callable[..., Any])

_EXEMPT_ATTRIBUTE: Final = "_coatcheck_csrf_exempt"


def csrf_exempt(view: F) -> F:
    """``@csrf_exempt``: unsafe requests to this view skip the CSRF check. Only for views
    that authenticate by other means (a webhook verifying a signature), since a view
    that trusts the session cookie is exactly what a forged request abuses."""
    setattr(view, _EXEMPT_ATTRIBUTE, True)
    return view


class CSRFError(Forbidden):
    """403 from the CSRF check; ``reason`` is the ``coatcheck.security.csrf.Rejection``. The
    body is the short plain text every coatcheck edge sends."""

    def __init__(self, reason: Rejection, body: bytes, headers: Any) -> None:
        self.reason = reason
        response = flask.current_app.response_class(body, status=403, headers=list(headers))
        super().__init__(description=f"CSRF check failed: {reason.message}", response=response)


def check_csrf(check: CsrfCheck, proxies: Proxies | None = None) -> None:
    """before_request: refuse a forged unsafe request before any view runs. ``proxies``
    (``trusted_proxies``) may say the client used https at a TLS-terminating proxy.

    Requests Flask will not route (404, 405) are left to Flask: no view runs for them.
    """
    request = flask.request
    if not check.applies(request.method) or request.routing_exception is not None:
        return  # (before flask.session: looking at it marks the response Vary: Cookie)
    session = flask.session
    if not isinstance(session, FlaskSession):
        return  # not ours (an UnavailableSession was answered 503 just before)
    view = flask.current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, _EXEMPT_ATTRIBUTE, False):
        return
    core = session.core
    scheme = request.scheme if proxies is None else proxies.from_environ(request.environ)[1]
    verdict = check.start(core, request.path, scheme, check.read_environ(request.environ))
    if isinstance(verdict, NeedBody):
        verdict = check.with_field(core, request.form.get(check.field))
    if verdict is not None:
        refusal = check.refuse(core, verdict, request.method, request.path)
        raise CSRFError(verdict, refusal.body, refusal.headers)


def csrf_token() -> str:
    """A CSRF token for the current request's session (``{{ csrf_token() }}`` in
    templates); empty while the store is unavailable (the request is a 503 anyway)."""
    session = flask.session
    if isinstance(session, FlaskSession):
        return session.csrf_token()
    return ""
