"""The data subject's rights over HTTP: ``GET /v1/users/{user_id}/export`` (GDPR Art. 15
and 20) and ``DELETE /v1/users/{user_id}`` (Art. 17), both ``admin``: they reach any
user's data. They go through the deployment's privacy registry only, as ``coatcheck
privacy export`` and ``erase`` do, so the service and the command line answer alike.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from coatcheck.errors import ConfigError
from coatcheck.privacy.registry import PrivacyRegistry
from coatcheck.service import api, problems
from coatcheck.service.context import service_of
from coatcheck.service.problems import Problem, openapi_responses


class Tombstone(BaseModel):
    on: str
    """The day of the erasure (UTC), all a tombstone keeps besides a keyed hash."""


class Export(BaseModel):
    format: str
    user_id: str
    exported_at: str
    erased: Tombstone | None
    holders: dict[str, dict[str, Any]]
    """One section per holder of personal data (``sessions``, ``activity``, ...)."""


class Erased(BaseModel):
    user_id: str
    erased_on: str
    removed: dict[str, int]
    """Items removed, per holder."""


router = APIRouter(prefix="/v1", tags=["users"])


def _registry(request: Request) -> PrivacyRegistry:
    registry = service_of(request).privacy
    if registry is None:
        raise Problem(problems.PRIVACY_UNAVAILABLE, "this service has no privacy registry")
    return registry


@router.get(
    "/users/{user_id}/export",
    name="users.export",
    response_model=Export,
    responses=openapi_responses(*api.COMMON),
    dependencies=api.ADMIN,
)
async def export(user_id: api.UserIdPath, request: Request) -> Response:
    """Everything coatcheck holds about the user, as one JSON document, nothing about
    anyone else; after an erasure, empty sections and the tombstone's day."""
    document = await _registry(request).export(api.checked_user(user_id))
    return JSONResponse(document)


@router.delete(
    "/users/{user_id}",
    name="users.erase",
    response_model=Erased,
    responses=openapi_responses(*api.COMMON, problems.PRIVACY_UNAVAILABLE),
    dependencies=api.ADMIN,
)
async def erase(user_id: api.UserIdPath, request: Request) -> Response:
    """End the user's sessions and delete what coatcheck holds about them, keeping one
    tombstone (a keyed hash of the id and the day)."""
    registry = _registry(request)
    try:
        erasure = await registry.erase(api.checked_user(user_id))
    except ConfigError as exc:
        raise Problem(problems.PRIVACY_UNAVAILABLE, str(exc)) from None
    body = {
        "user_id": erasure.user_id,
        "erased_on": erasure.erased_on,
        "removed": dict(erasure.removed),
    }
    return JSONResponse(body)
