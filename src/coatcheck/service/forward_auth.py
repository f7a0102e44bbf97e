"""``/v1/forward-auth``: a gateway (nginx ``auth_request``, Traefik ForwardAuth, Envoy
ext_authz) asks, for each request it holds, whether the request's session lets it pass.

It reads the forwarded request's own cookie or ``Authorization: Bearer``, loads and
commits its session exactly as the middleware does, and answers:

- 200 with ``X-Coatcheck-User`` (the user id, percent-encoded where it holds anything but
  printable ASCII), ``X-Coatcheck-Session`` (the handle), ``X-Coatcheck-Level`` and, when
  ``COATCHECK_FORWARD_AUTH_JWT`` names an audience, ``X-Coatcheck-JWT``; when the session
  rotated, the new cookie rides along in a standard ``Set-Cookie`` for the gateway to pass
  to the browser;
- 401 (a problem document) for no session, an anonymous one, or a dead one.

A passive request (its path under ``COATCHECK_PASSIVE_PATHS``, or the gateway's
``X-Coatcheck-Passive: 1``: polling routes) is checked but not committed: it neither slides
the idle deadline nor counts as activity, so a page that polls cannot keep an abandoned
session alive forever.

No API key: the gateway calls it for anonymous traffic too. Expose it only to the gateway.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from starlette.datastructures import Headers
from starlette.responses import Response

from coatcheck.analytics.recorder import PageFacts
from coatcheck.core.client import ClientInfo
from coatcheck.core.session import Session
from coatcheck.engine.manager import NO_CHANGE
from coatcheck.errors import Throttled
from coatcheck.http.headers import session_headers
from coatcheck.http.paths import is_under
from coatcheck.http.transport import scan_header_list
from coatcheck.service import calls, problems
from coatcheck.service.context import Service, service_of
from coatcheck.service.problems import Problem, openapi_responses

PATH: Final = "/v1/forward-auth"
USER_SAFE: Final = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
"""Characters ``X-Coatcheck-User`` carries as they are; any other is percent-encoded, so
a user id can never break the header (a newline) or fall outside Latin-1."""
METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""Gateways may call with the original request's method (Envoy does)."""

router = APIRouter(tags=["gateways"])


def original_uri(headers: Headers, suffix: str) -> str:
    """The URI the gateway holds: ``X-Forwarded-Uri`` (Traefik), ``X-Original-URI``
    (nginx), or what follows ``/v1/forward-auth`` in the path (Envoy appends it)."""
    return headers.get("x-forwarded-uri") or headers.get("x-original-uri") or suffix or "/"


def client_address(headers: Headers) -> str | None:
    """The end user's address as the gateway saw it (``X-Real-IP``, else the last
    ``X-Forwarded-For`` hop, the one the gateway appended). Never the connection's peer:
    that is the gateway, and throttling it would lock every user out."""
    real = headers.get("x-real-ip")
    if real:
        return real.strip()
    forwarded = headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[-1].strip() or None
    return None


def unauthenticated(detail: str, retry_after: int | None = None) -> Problem:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else None
    return Problem(problems.UNAUTHENTICATED, detail, headers=headers)


def record_page(
    service: Service, session: Session, request: Request, uri: str, started: float
) -> None:
    """The forwarded request as a page view: a GET whose ``Accept`` prefers HTML, at the
    gateway's ``X-Forwarded-Uri`` (its path only, ids folded), answered 200 here. Its
    duration is the app's, which the service never sees: none is recorded."""
    analytics = service.analytics
    headers = request.headers
    method = (headers.get("x-forwarded-method") or request.method).upper()
    if analytics is None or method != "GET":
        return
    facts = PageFacts(
        method,
        urlsplit(uri).path or "/",
        200,
        started,
        None,
        None,
        headers.get("accept"),
        headers.get("user-agent"),
        headers.get("sec-gpc"),
    )
    analytics.recorder.after_response(session, facts)


async def check(request: Request, suffix: str = "") -> Response:
    service = service_of(request)
    manager = service.manager
    config = manager.config
    headers = request.headers
    token, bearer, user_agent, gpc = scan_header_list(
        request.scope["headers"], config.cookie_name, config.allow_bearer
    )
    uri = original_uri(headers, suffix)
    path = urlsplit(uri).path or "/"
    passive = headers.get("x-coatcheck-passive") == "1" or is_under(
        path, service.settings.passive_paths
    )
    try:
        session = await manager.load(token, ClientInfo(user_agent, client_address(headers), gpc))
    except Throttled as exc:
        detail = "too many unknown session tokens from this client"
        raise unauthenticated(detail, exc.retry_after) from None
    session.via_bearer = bearer
    if session.user_id is None or session.handle is None:
        session.close()
        raise unauthenticated("no signed-in session")
    if passive:
        session.close()
        result = NO_CHANGE
    else:
        result = await manager.commit(session)
        if result.clear:
            raise unauthenticated("the session ended")
    answer = {
        "x-coatcheck-user": quote(session.user_id, safe=USER_SAFE),
        "x-coatcheck-session": session.handle,
        "x-coatcheck-level": str(session.auth_level),
    }
    audience = service.settings.forward_auth_jwt
    if audience is not None:
        minted = await calls.jwt_for(
            manager, service.signer, session, audience, service.settings.jwt_ttl
        )
        answer["x-coatcheck-jwt"] = minted["jwt"]
    record_page(service, session, request, uri, manager.clock())
    response = Response(status_code=200, headers=answer)
    update = session_headers(config, result, bearer=bearer, authenticated=True)
    if update is not None:
        for name, value in update.add:
            response.headers.append(name, value)
    response.headers["cache-control"] = "no-store"
    return response


RESPONSES = openapi_responses(problems.UNAUTHENTICATED, problems.STORE_UNAVAILABLE)
RESPONSES[200] = {
    "description": "The session lets the request pass; who it is rides in the headers",
    "headers": {
        "X-Coatcheck-User": {"schema": {"type": "string"}, "description": "The user id"},
        "X-Coatcheck-Session": {"schema": {"type": "string"}, "description": "The handle"},
        "X-Coatcheck-Level": {"schema": {"type": "string"}, "description": "Assurance level"},
        "X-Coatcheck-JWT": {"schema": {"type": "string"}, "description": "When configured"},
        "Set-Cookie": {"schema": {"type": "string"}, "description": "When the token rotated"},
    },
}


async def forward_auth(request: Request) -> Response:
    """Does the forwarded request's session let it pass? No API key needed. Any method:
    gateways ask with the original request's own."""
    return await check(request)


# One route answers every method, matched before the API's routes: a gateway asks for
# every request it holds, so the route table must find this call first (FastAPI tries its
# routes one by one, each a regex; measured by ``python -m bench service``). The document
# names an operation per method (``documented``, included after everything else, where no
# request ever reaches it), as the single route cannot give each its own operation id.
router.add_api_route(
    PATH, forward_auth, methods=METHODS, name="forward_auth", include_in_schema=False
)


envoy = APIRouter(tags=["gateways"])
"""Envoy's form of the call, included after the API: only Envoy sends it."""


@envoy.api_route(
    PATH + "/{suffix:path}", methods=METHODS, name="forward_auth", include_in_schema=False
)
async def forward_auth_envoy(suffix: str, request: Request) -> Response:
    """Envoy's ext_authz appends the original path to the service's."""
    return await check(request, "/" + suffix)


documented = APIRouter(tags=["gateways"])
for _method in METHODS:
    documented.add_api_route(
        PATH,
        forward_auth,
        methods=[_method],
        name="forward_auth",
        operation_id=f"forward_auth_{_method.lower()}",
        response_class=Response,
        responses=RESPONSES,
    )
