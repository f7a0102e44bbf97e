"""The ``/v1`` calls: each checks its API key's scope, validates its body, and hands plain
values to ``calls``; answers are JSON, refusals problem documents (``problems``).

The end user's token travels only in bodies, never in a URL, where logs and proxies would
keep it. Calls by user id or handle reach any user's sessions and so need ``admin``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import JSONResponse, Response

from coatcheck.service import calls, models, problems, summary_models
from coatcheck.service.apikeys import ApiKey
from coatcheck.service.context import service_of
from coatcheck.service.models import storable_text
from coatcheck.service.problems import Problem, openapi_responses

HANDLE_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What a session's handle looks like (base64url); anything else names no session, and
so never a reserved record (whose handles hold a colon)."""

SECURITY_SCHEME: Final = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key from `coatcheck api-keys create`",
}
"""How the OpenAPI document names the API key (``app`` adds it to the calls that need one)."""
WWW_AUTHENTICATE: Final = {"www-authenticate": 'Bearer realm="coatcheck"'}
SCOPE_ATTRIBUTE: Final = "coatcheck_scope"


def presented_key(request: Request) -> str | None:
    """The credentials of ``Authorization: Bearer <key>``, or None (no header, another
    scheme, nothing after it), as FastAPI's ``HTTPBearer`` reads them."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if not credentials or scheme.lower() != "bearer":
        return None
    return credentials


def require(scope: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency: the caller's API key, which must grant ``scope``.

    One dependency on the request alone, not one on FastAPI's ``HTTPBearer``: each level
    of dependencies FastAPI solves costs every call (a tenth of the service's throughput
    under load, measured by ``python -m bench service``). Being a dependency, it runs
    before the body is validated, so a caller without a key learns nothing of its body."""

    async def check(request: Request) -> ApiKey:
        presented = presented_key(request)
        if presented is None:
            detail = "this call needs Authorization: Bearer <API key>"
            raise Problem(problems.BAD_KEY, detail, headers=WWW_AUTHENTICATE)
        key = await service_of(request).keys.authenticate(presented)
        if key is None:
            raise Problem(problems.BAD_KEY, "unknown or revoked API key", headers=WWW_AUTHENTICATE)
        if not key.grants(scope):
            detail = f"this call needs a key with scope {scope!r}; key {key.name!r} has " + (
                ", ".join(sorted(key.scopes)) or "none"
            )
            raise Problem(problems.MISSING_SCOPE, detail)
        return key

    setattr(check, SCOPE_ATTRIBUTE, scope)
    return check


INTROSPECT = [Depends(require("introspect"))]
SESSIONS = [Depends(require("sessions"))]
ADMIN = [Depends(require("admin"))]

COMMON = (
    problems.BAD_KEY,
    problems.MISSING_SCOPE,
    problems.INVALID_BODY,
    problems.BODY_TOO_LARGE,
    problems.STORE_UNAVAILABLE,
)
ON_TOKEN = (*COMMON, problems.SESSION_NOT_FOUND)

router = APIRouter(prefix="/v1", tags=["sessions"])


# Introspect first: the call made for every request a client serves, so the route table
# (tried in order) finds it at once.
@router.post(
    "/sessions/introspect",
    name="sessions.introspect",
    response_model=models.Active | models.Inactive,
    responses=openapi_responses(*COMMON, problems.THROTTLED),
    dependencies=INTROSPECT,
)
async def introspect(body: models.Introspect, request: Request) -> Response:
    """Is the token live? As RFC 7662: ``active: false`` for any token that is not. With
    ``touch`` (the default) the call counts as activity and may rotate the token."""
    return JSONResponse(await calls.introspect(service_of(request).manager, body))


@router.post(
    "/sessions",
    name="sessions.create",
    status_code=201,
    response_model=models.Issued,
    responses=openapi_responses(*COMMON, problems.SESSION_TOO_LARGE, problems.SESSION_LIMIT),
    dependencies=SESSIONS,
)
async def create_session(body: models.CreateSession, request: Request) -> Response:
    """A new session (signed in when ``user_id`` is given): its token and its view."""
    answer = await calls.create(service_of(request).manager, body)
    return JSONResponse(answer, status_code=201)


@router.post(
    "/sessions/update",
    name="sessions.update",
    response_model=models.Updated,
    responses=openapi_responses(*ON_TOKEN, problems.SESSION_TOO_LARGE, problems.SESSION_CONFLICT),
    dependencies=SESSIONS,
)
async def update(body: models.Update, request: Request) -> Response:
    """Set and remove data keys: a delta, so concurrent updates of other keys survive."""
    return JSONResponse(await calls.update(service_of(request).manager, body))


@router.post(
    "/sessions/consent",
    name="sessions.consent",
    response_model=models.Updated,
    responses=openapi_responses(*ON_TOKEN),
    dependencies=SESSIONS,
)
async def consent(body: models.Consent, request: Request) -> Response:
    """Record the end user's consent choice (granted and denied categories, and how it
    was made) in the session; the consent ledger keeps it as proof."""
    return JSONResponse(await calls.consent(service_of(request).manager, body))


@router.post(
    "/sessions/login",
    name="sessions.login",
    response_model=models.Issued,
    responses=openapi_responses(*ON_TOKEN, problems.SESSION_LIMIT),
    dependencies=SESSIONS,
)
async def login(body: models.Login, request: Request) -> Response:
    """Sign the session in as ``user_id``: a new token, the old one dead, the data kept
    (unless the session belonged to another user)."""
    return JSONResponse(await calls.login(service_of(request).manager, body))


@router.post(
    "/sessions/regenerate",
    name="sessions.regenerate",
    response_model=models.Issued,
    responses=openapi_responses(*ON_TOKEN),
    dependencies=SESSIONS,
)
async def regenerate(body: models.TokenOnly, request: Request) -> Response:
    """A new token for the same session; the old one is dead."""
    return JSONResponse(await calls.regenerate(service_of(request).manager, body))


@router.post(
    "/sessions/logout",
    name="sessions.logout",
    status_code=204,
    response_class=Response,
    responses=openapi_responses(*ON_TOKEN),
    dependencies=SESSIONS,
)
async def logout(body: models.TokenOnly, request: Request) -> Response:
    """End the session."""
    await calls.logout(service_of(request).manager, body)
    return Response(status_code=204)


@router.post(
    "/sessions/token",
    name="sessions.token",
    response_model=models.Jwt,
    responses=openapi_responses(*ON_TOKEN, problems.SESSION_ANONYMOUS),
    dependencies=INTROSPECT,
)
async def token(body: models.MakeJwt, request: Request) -> Response:
    """A signed JWT for the session's user, for upstream services to check alone."""
    service = service_of(request)
    answer = await calls.make_jwt(service.manager, service.signer, service.settings, body)
    return JSONResponse(answer)


UserIdPath = Annotated[str, Path(min_length=1, max_length=256)]


def checked_user(user_id: str) -> str:
    """A user id from a path: storable text of at most 256 characters, counted as
    JavaScript and Java count them (UTF-16 units), so an id a Node or JVM client thinks
    too long is refused here too, not only one Python does."""
    if len(user_id.encode("utf-16-le")) > 2 * 256:
        raise Problem(problems.INVALID_BODY, "user_id: longer than 256 characters")
    try:
        return storable_text(user_id)
    except ValueError as exc:
        raise Problem(problems.INVALID_BODY, f"user_id: {exc}") from None


@router.get(
    "/users/{user_id}/sessions",
    name="users.sessions",
    response_model=models.Devices,
    responses=openapi_responses(*COMMON),
    dependencies=ADMIN,
)
async def user_sessions(user_id: UserIdPath, request: Request) -> Response:
    """The user's live sessions, oldest first: handles, times and device, never a token."""
    manager = service_of(request).manager
    infos = await manager.list_user_sessions(checked_user(user_id))
    return JSONResponse({"sessions": [calls.device(info) for info in infos]})


@router.delete(
    "/users/{user_id}/sessions",
    name="users.revoke",
    response_model=models.Revoked,
    responses=openapi_responses(*COMMON),
    dependencies=ADMIN,
)
async def revoke_user(
    user_id: UserIdPath,
    request: Request,
    except_: Annotated[str | None, Query(alias="except", max_length=64)] = None,
) -> Response:
    """End every session of the user, except the one whose handle is ``except``."""
    manager = service_of(request).manager
    if except_ is not None and HANDLE_PATTERN.fullmatch(except_) is None:
        raise Problem(problems.INVALID_BODY, "except: not a session handle")
    count = await manager.revoke_user(checked_user(user_id), except_handle=except_)
    return JSONResponse({"revoked": count})


@router.delete(
    "/sessions/{handle}",
    name="sessions.revoke",
    status_code=204,
    response_class=Response,
    responses=openapi_responses(*COMMON, problems.SESSION_NOT_FOUND),
    dependencies=ADMIN,
)
async def revoke(handle: Annotated[str, Path(max_length=256)], request: Request) -> Response:
    """End the session with this handle."""
    manager = service_of(request).manager
    if HANDLE_PATTERN.fullmatch(handle) is None or not await manager.revoke(handle):
        raise Problem(problems.SESSION_NOT_FOUND, "no session has this handle")
    return Response(status_code=204)


SPAN_TEXT = "A span back from now (7d, 24h), an ISO 8601 date or time (UTC), or epoch seconds"
MAX_HOURS: Final = 24 * 400
"""The longest range a summary covers (400 days, in hours: the hourly series' length)."""


@router.get(
    "/analytics/summary",
    name="analytics.summary",
    response_model=summary_models.Summary,
    responses=openapi_responses(*COMMON, problems.NOT_FOUND),
    dependencies=ADMIN,
    tags=["analytics"],
)
async def analytics_summary(
    request: Request,
    since: Annotated[str, Query(max_length=40, description=SPAN_TEXT)] = "7d",
    until: Annotated[str | None, Query(max_length=40, description=SPAN_TEXT)] = None,
    route: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """The figures of ``[since, until)`` (``until`` defaults to now), optionally for the
    visits that viewed ``route``: the document of ``coatcheck analytics report --json``."""
    from anyio import to_thread

    from coatcheck.analytics.figures import summary
    from coatcheck.analytics.periods import parse_when

    service = service_of(request)
    analytics = service.analytics
    if analytics is None:
        raise Problem(problems.NOT_FOUND, "analytics is off (COATCHECK_ANALYTICS_URL)")
    now = service.manager.clock()
    try:
        start = parse_when(since, now)
        end = now if until is None else parse_when(until, now)
    except ValueError as exc:
        raise Problem(problems.INVALID_BODY, str(exc)) from None
    if not 0 <= start < end or end - start > MAX_HOURS * 3600:
        raise Problem(problems.INVALID_BODY, "since must be before until, within 400 days")
    document = await to_thread.run_sync(
        lambda: summary(analytics.store, start, end, route, now=now)
    )
    return JSONResponse(document)
