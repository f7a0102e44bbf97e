"""The browser side for Django: ``urlpatterns += browser_urls()`` serves ``coatcheck.js``
and its keep-alive under ``coatcheck/``, answered by ``coatcheck.http.browser`` as on
every edge. Django's own CSRF middleware guards the keep-alive's POST, as any other."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.http import require_http_methods

from coatcheck.http import browser, gpc
from coatcheck.integrations.django.store import SessionStore

__all__ = ["browser_urls", "gpc_urls", "keep_alive_view", "script_view"]


def _response(answer: browser.Answer) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status)
    del response["Content-Type"]  # no default text/html on a 204 or a 304
    for name, value in answer.headers:
        response[name] = value
    return response


@require_http_methods(["GET", "HEAD"])
def script_view(request: HttpRequest) -> HttpResponse:
    """``coatcheck.js``, revalidated by its ETag."""
    return _response(browser.script_answer(request.headers.get("If-None-Match")))


@require_http_methods(["GET", "POST"])
def keep_alive_view(request: HttpRequest) -> HttpResponse:
    """POST extends a signed-in session's idle deadline; GET only reports it (in the
    ``X-Session-Expires`` header that ``coatcheck.django.SessionMiddleware`` adds)."""
    session = getattr(request, "session", None)
    if not isinstance(session, SessionStore):
        raise ImproperlyConfigured('the keep-alive needs SESSION_ENGINE = "coatcheck.django"')
    return _response(browser.keep_alive(session.core, request.method or "GET"))


def browser_urls(prefix: str = browser.PREFIX.lstrip("/") + "/") -> list[URLPattern]:
    """The two URL patterns under ``prefix`` (``"coatcheck/"``, as Django writes routes)."""
    return [
        path(prefix + browser.SCRIPT_NAME, script_view, name="coatcheck-js"),
        path(prefix + browser.KEEP_ALIVE_NAME, keep_alive_view, name="coatcheck-keep-alive"),
    ]


def gpc_urls(last_update: str = gpc.LAST_UPDATE) -> list[URLPattern]:
    """``/.well-known/gpc.json``: this site honours Global Privacy Control
    (``urlpatterns += gpc_urls()``)."""
    answer = gpc.gpc_answer(last_update)  # checked now, at start-up

    @require_http_methods(["GET", "HEAD"])
    def gpc_view(request: HttpRequest) -> HttpResponse:
        return _response(answer)

    return [path(gpc.GPC_PATH.lstrip("/"), gpc_view, name="coatcheck-gpc")]
