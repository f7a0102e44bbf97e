"""The routes around the API: liveness, readiness, metrics and the JWKS.

``/healthz`` says the process answers; ``/readyz`` that the store does too, within
``COATCHECK_READY_TIMEOUT`` (503 otherwise, so a load balancer sends traffic elsewhere);
``/metrics`` is Prometheus text; ``/.well-known/jwks.json`` the keys that verify the JWTs;
``/.well-known/gpc.json`` says the service honours Global Privacy Control.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from coatcheck.errors import StoreUnavailable
from coatcheck.http import gpc
from coatcheck.service import models, problems, reserved
from coatcheck.service.context import Service, service_of
from coatcheck.service.metrics import CONTENT_TYPE
from coatcheck.service.problems import Problem, openapi_responses
from coatcheck.stores.base import Countable, InlineStore, Store

PROBE_KEY: Final = "0" * 64
"""A storage key no token hashes to in practice: reading it shows the store answers."""
COUNT_INTERVAL: Final = 10.0
"""Seconds between two counts of the active sessions (a count may scan the store)."""

router = APIRouter(tags=["operations"])


async def probe(store: Store, deadline: float) -> None:
    """Read ``PROBE_KEY`` within ``deadline`` seconds, or raise StoreUnavailable. A store
    that works inline (SQLite) is read on a thread, so a locked file cannot stall the
    answer past its deadline."""
    inner = getattr(store, "inner", store)
    try:
        async with asyncio.timeout(deadline):
            if isinstance(inner, InlineStore):
                await asyncio.to_thread(store.get_sync, PROBE_KEY)
            else:
                await store.get(PROBE_KEY)
    except TimeoutError:
        raise StoreUnavailable(f"the store did not answer within {deadline:g} s") from None


@router.get(gpc.GPC_PATH, name="gpc", response_model=models.Gpc)
async def gpc_json() -> Response:
    """This service honours Global Privacy Control (``Sec-GPC: 1`` at forward-auth, and
    ``client.gpc`` in the session calls)."""
    answer = gpc.gpc_answer()
    return Response(answer.body, headers=dict(answer.headers))


@router.get("/healthz", name="healthz", response_model=models.Health)
async def healthz() -> Response:
    """The process is up (it says nothing about the store: see ``/readyz``)."""
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    name="readyz",
    response_model=models.Health,
    responses=openapi_responses(problems.STORE_UNAVAILABLE),
)
async def readyz(request: Request) -> Response:
    """The store answers within the deadline; 503 with ``Retry-After`` otherwise."""
    service = service_of(request)
    try:
        await probe(reserved.server_store(service.manager.store), service.settings.ready_timeout)
    except StoreUnavailable as exc:
        detail = f"the session store is not ready: {exc}"
        raise Problem(problems.STORE_UNAVAILABLE, detail, headers={"retry-after": "5"}) from None
    return JSONResponse({"status": "ready"})


class ActiveCount:
    """The number of live sessions, counted at most every ``COUNT_INTERVAL`` seconds; None
    when the store cannot count or did not answer in time. The reserved records (API keys,
    JWT ring) are not sessions and are not counted."""

    def __init__(self) -> None:
        self.value: int | None = None
        self.at: float | None = None

    async def get(self, service: Service) -> int | None:
        now = time.monotonic()
        if self.at is not None and now - self.at < COUNT_INTERVAL:
            return self.value
        self.at = now
        self.value = await self._count(service)
        return self.value

    @staticmethod
    async def _count(service: Service) -> int | None:
        store = service.manager.store
        if not isinstance(store, Store) or not isinstance(store, Countable):
            return None
        timeout = service.settings.ready_timeout
        try:
            async with asyncio.timeout(timeout):
                total = await store.count(service.manager.clock())
                for name in (reserved.API_KEYS, reserved.JWT_KEYS):
                    if await store.get(reserved.reserved_key(name)) is not None:
                        total -= 1
        except (NotImplementedError, StoreUnavailable, TimeoutError):
            return None
        return max(0, total)


@router.get(
    "/metrics",
    name="metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text: session counters, latency histograms, active sessions."""
    service = service_of(request)
    counter: ActiveCount = request.app.state.coatcheck_active
    active = await counter.get(service)
    return Response(service.metrics.exposition(active), media_type=CONTENT_TYPE)


@router.get(
    "/.well-known/jwks.json",
    name="jwks",
    responses=openapi_responses(problems.STORE_UNAVAILABLE),
)
async def jwks(request: Request) -> Response:
    """The public keys that verify the service's JWTs (RFC 7517), current and recent."""
    keys = await service_of(request).signer.jwks()
    return JSONResponse(keys, headers={"cache-control": "public, max-age=60"})
