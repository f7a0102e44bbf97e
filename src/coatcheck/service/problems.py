"""Errors of the service as RFC 9457 problem details: one stable ``type`` URI per cause.

A client (the Express middleware, a gateway's script, an operator's curl) tells causes
apart by ``type`` alone, so each cause has exactly one URI here, and every refusal of the
service, whether raised by a route, by FastAPI's own validation or by the engine (a store
failure, a throttled client), leaves as ``application/problem+json`` through ``answer``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from starlette.responses import Response

from coatcheck.errors import (
    CoatcheckError,
    SessionConflict,
    SessionDataError,
    SessionLimitExceeded,
    SessionTooLarge,
    StoreUnavailable,
    Throttled,
)

MEDIA_TYPE: Final = "application/problem+json"
TYPE_BASE: Final = "urn:coatcheck:problem:"
"""Problem types are URNs: stable names to compare, never addresses to fetch."""


@dataclass(frozen=True, slots=True)
class Kind:
    """One cause of refusal: its ``type`` slug, HTTP status and short title."""

    slug: str
    status: int
    title: str

    @property
    def type(self) -> str:
        return TYPE_BASE + self.slug


BAD_KEY: Final = Kind("bad-key", 401, "Missing or invalid API key")
MISSING_SCOPE: Final = Kind("missing-scope", 403, "The API key lacks the scope for this call")
INVALID_BODY: Final = Kind("invalid-body", 422, "The request is not valid for this call")
BODY_TOO_LARGE: Final = Kind("body-too-large", 413, "The request body is too large")
SESSION_NOT_FOUND: Final = Kind("session-not-found", 404, "No live session for this token")
SESSION_TOO_LARGE: Final = Kind("session-too-large", 413, "The session data would be too large")
SESSION_ANONYMOUS: Final = Kind("session-anonymous", 409, "The session has no user")
SESSION_CONFLICT: Final = Kind("session-conflict", 409, "The session changed during this call")
SESSION_LIMIT: Final = Kind("session-limit", 403, "The user has too many sessions")
UNAUTHENTICATED: Final = Kind("unauthenticated", 401, "No signed-in session")
THROTTLED: Final = Kind("throttled", 429, "Too many unknown session tokens")
STORE_UNAVAILABLE: Final = Kind("store-unavailable", 503, "The session store is unavailable")
NOT_FOUND: Final = Kind("not-found", 404, "No such resource")
METHOD_NOT_ALLOWED: Final = Kind("method-not-allowed", 405, "Method not allowed here")
PRIVACY_UNAVAILABLE: Final = Kind(
    "privacy-unavailable", 503, "Export or erasure is not configured on this service"
)

KINDS: Final = (
    BAD_KEY,
    MISSING_SCOPE,
    INVALID_BODY,
    BODY_TOO_LARGE,
    SESSION_NOT_FOUND,
    SESSION_TOO_LARGE,
    SESSION_ANONYMOUS,
    SESSION_CONFLICT,
    SESSION_LIMIT,
    UNAUTHENTICATED,
    THROTTLED,
    STORE_UNAVAILABLE,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    PRIVACY_UNAVAILABLE,
)


class Problem(CoatcheckError):
    """A refusal the service answers with a problem document of ``kind``."""

    def __init__(
        self,
        kind: Kind,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors = errors


def response(problem: Problem, instance: str | None = None) -> Response:
    """The problem document as a response: never cached, and ``Retry-After`` or
    ``WWW-Authenticate`` when the cause has one."""
    kind = problem.kind
    body: dict[str, Any] = {
        "type": kind.type,
        "title": kind.title,
        "status": kind.status,
        "detail": problem.detail,
    }
    if instance is not None:
        body["instance"] = instance
    if problem.errors is not None:
        body["errors"] = problem.errors
    headers = {"cache-control": "no-store", **problem.headers}
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, kind.status, headers=headers, media_type=MEDIA_TYPE)


def from_engine(exc: CoatcheckError) -> Problem:
    """The problem an engine error stands for: the same causes the library's edges
    answer (503, 429, 403, 413), as problem documents."""
    if isinstance(exc, Problem):
        return exc
    retry = {"retry-after": str(exc.retry_after)} if exc.retry_after is not None else {}
    if isinstance(exc, StoreUnavailable):
        detail = "the session store did not answer; retry shortly"
        return Problem(STORE_UNAVAILABLE, detail, headers=retry)
    if isinstance(exc, Throttled):
        detail = "too many unknown session tokens from this client; slow down"
        return Problem(THROTTLED, detail, headers=retry)
    if isinstance(exc, SessionLimitExceeded):
        return Problem(SESSION_LIMIT, str(exc))
    if isinstance(exc, SessionConflict):
        return Problem(SESSION_CONFLICT, str(exc), headers=retry)
    if isinstance(exc, SessionTooLarge):
        return Problem(SESSION_TOO_LARGE, str(exc))
    if isinstance(exc, SessionDataError):
        return Problem(INVALID_BODY, str(exc))
    # Anything else the engine raises is treated as the store failing: refusing is safe.
    return Problem(STORE_UNAVAILABLE, "the session store failed", headers={"retry-after": "5"})


def validation_errors(
    errors: Iterable[Mapping[str, Any]], fields: frozenset[str]
) -> list[dict[str, Any]]:
    """Pydantic's errors as ``{"location": [...], "message": "..."}``, without the input
    values it would echo (a body may hold what should not travel back through logs). A
    location keeps the parts a client knows (``body``, the names in ``fields``, list
    indexes), not pydantic's names for the branches of a type."""
    out = []
    for error in errors:
        if error.get("type") == "none_required":
            continue  # the hidden "left out" branch of an optional field: not the client's news
        location = [
            part
            for part in error["loc"]
            if isinstance(part, int) or part in fields or part in ("body", "path", "query")
        ]
        out.append({"location": location, "message": str(error.get("msg", "invalid"))})
    return out


def openapi_responses(*kinds: Kind) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry of a route for the problems it may answer, so the OpenAPI
    document lists every status the route can return (schemathesis checks it does)."""
    by_status: dict[int, list[Kind]] = {}
    for kind in kinds:
        by_status.setdefault(kind.status, []).append(kind)
    return {
        status: {
            "description": "; ".join(k.title for k in group)
            + " ("
            + ", ".join(f"`{k.type}`" for k in group)
            + ")",
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
        }
        for status, group in sorted(by_status.items())
    }
