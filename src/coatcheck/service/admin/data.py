"""Where the dashboard's figures come from: the ``DashboardData`` protocol, the recent
security events every service keeps in memory, and the provider used until analytics and
the consent ledger are wired in.

The exact shapes a provider returns are in the package docstring
(``coatcheck.service.admin``); this module holds the types and the defaults.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any, Final, Protocol, runtime_checkable

from coatcheck.core import events as ev
from coatcheck.core.events import SessionEvent

SECURITY_EVENTS: Final = frozenset({ev.THEFT_SUSPECTED, ev.LIMIT_REACHED, ev.CLIENT_CHANGED})
"""The events the security page lists."""
RECENT_LIMIT: Final = 500


@runtime_checkable
class DashboardData(Protocol):
    """What the dashboard asks for. Each method may return None: "not configured", shown
    as an empty state, never an error. A provider over a synchronous store runs its
    queries in a worker thread (``starlette.concurrency.run_in_threadpool``)."""

    async def summary(
        self, since: float, until: float, route: str | None = None
    ) -> dict[str, Any] | None:
        """The analytics summary of ``[since, until)`` (epoch seconds), for one route when
        ``route`` is given."""
        ...

    async def security_events(self, limit: int) -> list[SessionEvent]:
        """The latest security events (``SECURITY_EVENTS``), newest first."""
        ...

    async def consent(self, since: float, until: float) -> dict[str, Any] | None:
        """Consent figures of ``[since, until)``."""
        ...


class RecentEvents:
    """An event sink keeping the last ``limit`` security events of this process in
    memory, for the security page until the analytics store records them. Bounded, so a
    flood of events costs a fixed amount of memory; one per process, so with
    ``--workers N`` each worker shows its own."""

    def __init__(self, limit: int = RECENT_LIMIT, names: Iterable[str] = SECURITY_EVENTS) -> None:
        self.names = frozenset(names)
        self._events: deque[SessionEvent] = deque(maxlen=limit)
        self._lock = threading.Lock()  # sync edges emit from worker threads

    def __call__(self, event: SessionEvent) -> None:
        if event.name in self.names:
            with self._lock:
                self._events.append(event)

    def latest(self, limit: int) -> list[SessionEvent]:
        """At most ``limit`` events, newest first."""
        with self._lock:
            events = list(self._events)
        events.reverse()
        return events[:limit]


class LocalData:
    """The provider of a service without analytics: the security events this process saw,
    and no summary or consent figures (the pages say "not configured")."""

    def __init__(self, recent: RecentEvents) -> None:
        self.recent = recent

    async def summary(
        self, since: float, until: float, route: str | None = None
    ) -> dict[str, Any] | None:
        return None

    async def security_events(self, limit: int) -> list[SessionEvent]:
        return self.recent.latest(limit)

    async def consent(self, since: float, until: float) -> dict[str, Any] | None:
        return None
