"""What ``/metrics`` shows, in Prometheus' text format (prometheus-client).

- Session lifecycle counters, fed by the manager's event sink (``Metrics.sink``), so they
  count what the engine did, whichever edge asked: sessions created, ended by reason
  (logout, idle_expired, absolute_expired, revoked, session_limit, theft_suspected),
  tokens rejected by reason (unknown, malformed, revoked), theft suspected.
- Latency histograms: each request by the operation it called (``RequestTimer``), each
  store call by its method (``TimedStore``, a store that times the one it wraps).
- Active sessions, read from the store at scrape time where the store can count.

With several workers (``serve --workers N``) each process writes its figures to the
directory in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape sums them, whichever worker answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from coatcheck.analytics.writer import WriterStats
from coatcheck.core import events as ev
from coatcheck.core.events import SessionEvent
from coatcheck.core.record import Patch, SessionRecord
from coatcheck.stores.base import Countable, HandleIndex, Purgeable, Store, UserIndex

P = ParamSpec("P")
T = TypeVar("T")

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The service's metrics, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.created = Counter("coatcheck_sessions_created", "Sessions created", registry=r)
        self.ended = Counter(
            "coatcheck_sessions_ended", "Sessions ended, by reason", ["reason"], registry=r
        )
        self.rejected = Counter(
            "coatcheck_sessions_rejected",
            "Tokens presented that named no live session, by reason",
            ["reason"],
            registry=r,
        )
        self.theft = Counter(
            "coatcheck_sessions_theft_suspected",
            "Rotated-out tokens presented after their grace time (the session was revoked)",
            registry=r,
        )
        self.requests = Histogram(
            "coatcheck_request_duration_seconds",
            "Time to answer a request, by operation",
            ["operation"],
            buckets=BUCKETS,
            registry=r,
        )
        self.store_calls = Histogram(
            "coatcheck_store_duration_seconds",
            "Time of one store call, by store operation",
            ["operation"],
            buckets=BUCKETS,
            registry=r,
        )

    def sink(self, event: SessionEvent) -> None:
        """The manager's event sink: each lifecycle event moves its counter."""
        name = event.name
        detail = event.detail
        if name == ev.CREATED:
            self.created.inc()
        elif name == ev.LOGOUT:
            self.ended.labels("logout").inc()
        elif name == ev.EXPIRED:
            reason = str(detail.get("reason", "expired"))
            if reason != "gone":  # ended meanwhile by someone else, who counted it
                self.ended.labels(reason).inc()
        elif name == ev.REVOKED:
            count = detail.get("count", 1)
            reason = str(detail.get("reason", "revoked"))
            self.ended.labels(reason).inc(count if isinstance(count, int) else 1)
        elif name == ev.THEFT_SUSPECTED:
            self.theft.inc()
            self.ended.labels("theft_suspected").inc()
        elif name == ev.REJECTED:
            self.rejected.labels(str(detail.get("reason", "unknown"))).inc()

    def exposition(self, active: int | None) -> bytes:
        """The text a scrape gets: every process's figures, and the active sessions."""
        if os.environ.get(MULTIPROCESS_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            text = generate_latest(registry)
        else:
            text = generate_latest(self.registry)
        if active is not None:
            text += (
                b"# HELP coatcheck_sessions_active Live sessions in the store\n"
                b"# TYPE coatcheck_sessions_active gauge\n"
                b"coatcheck_sessions_active " + str(active).encode() + b"\n"
            )
        if self.analytics is not None:
            text += analytics_lines(self.analytics())
        return text

    analytics: Callable[[], WriterStats] | None = None
    """The analytics writer's counts (``Service.build`` sets it when analytics is on)."""


def analytics_lines(stats: WriterStats) -> bytes:
    """The analytics writer's rows by outcome (this process's writer) and its queue."""
    lines = [
        "# HELP coatcheck_analytics_rows_total Analytics rows by outcome (written, dropped "
        "because the queue was full, failed with the store)",
        "# TYPE coatcheck_analytics_rows_total counter",
    ]
    for outcome, count in (
        ("written", stats.written),
        ("dropped", stats.dropped),
        ("failed", stats.failed),
    ):
        lines.append(f'coatcheck_analytics_rows_total{{outcome="{outcome}"}} {count}')
    lines += [
        "# HELP coatcheck_analytics_queued Analytics rows waiting for the writer",
        "# TYPE coatcheck_analytics_queued gauge",
        f"coatcheck_analytics_queued {stats.queued}",
    ]
    return ("\n".join(lines) + "\n").encode()


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
FALLBACK_KEY: Final = "coatcheck.fallback"
"""Set in the scope of a request the service hands to its fallback app (the demo)."""


class RequestTimer:
    """ASGI middleware: the time of each HTTP request, labelled with the name of the route
    that answered it (``unmatched`` when none did)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.histogram = metrics.requests

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            if FALLBACK_KEY in scope:
                name = "demo"
            else:
                name = getattr(scope.get("route"), "name", None) or "unmatched"
            self.histogram.labels(name).observe(time.perf_counter() - start)


class TimedStore(Store, HandleIndex, UserIndex, Purgeable, Countable):
    """The store ``inner``, each call timed into ``coatcheck_store_duration_seconds``.
    Anything else (``stats_sync``, ``path``, ...) is the inner store's. The service needs
    every capability it declares (devices, revocation by handle, purge, the active count),
    so an inner store without one is refused here, naming it."""

    def __init__(self, inner: Store, metrics: Metrics) -> None:
        self.inner = inner
        self._handles = HandleIndex.of(inner, "coatcheck serve")
        self._users = UserIndex.of(inner, "coatcheck serve")
        self._purge = Purgeable.of(inner, "coatcheck serve")
        self._count = Countable.of(inner, "coatcheck serve")
        h = metrics.store_calls
        self._h = {
            name: h.labels(name)
            for name in (
                "get",
                "create",
                "apply",
                "rename",
                "delete",
                "get_by_handle",
                "list_user",
                "delete_handle",
                "delete_user",
                "purge_expired",
                "count",
            )
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _timed(self, name: str, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self._h[name].observe(time.perf_counter() - start)

    async def _atimed(
        self, name: str, call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        start = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            self._h[name].observe(time.perf_counter() - start)

    # -- sync --------------------------------------------------------------------------
    def get_sync(self, key: str) -> SessionRecord | None:
        return self._timed("get", self.inner.get_sync, key)

    def create_sync(self, record: SessionRecord) -> None:
        self._timed("create", self.inner.create_sync, record)

    def apply_sync(self, key: str, patch: Patch) -> bool:
        return self._timed("apply", self.inner.apply_sync, key, patch)

    def rename_sync(self, old_key: str, new_key: str, patch: Patch) -> bool:
        return self._timed("rename", self.inner.rename_sync, old_key, new_key, patch)

    def delete_sync(self, key: str) -> bool:
        return self._timed("delete", self.inner.delete_sync, key)

    def get_by_handle_sync(self, handle: str) -> SessionRecord | None:
        return self._timed("get_by_handle", self._handles.get_by_handle_sync, handle)

    def list_user_sync(self, user_id: str, now: float) -> list[SessionRecord]:
        return self._timed("list_user", self._users.list_user_sync, user_id, now)

    def delete_handle_sync(self, handle: str) -> SessionRecord | None:
        return self._timed("delete_handle", self._handles.delete_handle_sync, handle)

    def delete_user_sync(self, user_id: str, except_handle: str | None = None) -> int:
        return self._timed("delete_user", self._users.delete_user_sync, user_id, except_handle)

    def purge_expired_sync(self, now: float, batch_size: int) -> int:
        return self._timed("purge_expired", self._purge.purge_expired_sync, now, batch_size)

    def count_sync(self, now: float) -> int:
        return self._timed("count", self._count.count_sync, now)

    def close_sync(self) -> None:
        self.inner.close_sync()

    # -- async -------------------------------------------------------------------------
    async def get(self, key: str) -> SessionRecord | None:
        return await self._atimed("get", self.inner.get, key)

    async def create(self, record: SessionRecord) -> None:
        await self._atimed("create", self.inner.create, record)

    async def apply(self, key: str, patch: Patch) -> bool:
        return await self._atimed("apply", self.inner.apply, key, patch)

    async def rename(self, old_key: str, new_key: str, patch: Patch) -> bool:
        return await self._atimed("rename", self.inner.rename, old_key, new_key, patch)

    async def delete(self, key: str) -> bool:
        return await self._atimed("delete", self.inner.delete, key)

    async def get_by_handle(self, handle: str) -> SessionRecord | None:
        return await self._atimed("get_by_handle", self._handles.get_by_handle, handle)

    async def list_user(self, user_id: str, now: float) -> list[SessionRecord]:
        return await self._atimed("list_user", self._users.list_user, user_id, now)

    async def delete_handle(self, handle: str) -> SessionRecord | None:
        return await self._atimed("delete_handle", self._handles.delete_handle, handle)

    async def delete_user(self, user_id: str, except_handle: str | None = None) -> int:
        return await self._atimed("delete_user", self._users.delete_user, user_id, except_handle)

    async def purge_expired(self, now: float, batch_size: int) -> int:
        return await self._atimed("purge_expired", self._purge.purge_expired, now, batch_size)

    async def count(self, now: float) -> int:
        return await self._atimed("count", self._count.count, now)

    async def close(self) -> None:
        await self.inner.close()
