"""Switching analytics on: one URL names the store, and everything else follows from it.

``open_store`` picks the backend by scheme (``sqlite:///path``, ``postgresql://...``, each
with an optional ``?table=``). ``Analytics`` is the running whole: the store, its
background writer, the page-view recorder and the lifecycle sink. ``analytics_for`` is what
an edge calls with its manager: built once per manager from ``SessionConfig.analytics_url``
(``COATCHECK_ANALYTICS_URL``), its sink added to the manager's, None when the URL is unset.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from coatcheck.analytics.recorder import ConsentGate, PageRecorder, consent_gate
from coatcheck.analytics.rows import Hit
from coatcheck.analytics.sinks import StoreSink
from coatcheck.analytics.store import DEFAULT_TABLE, AnalyticsStore
from coatcheck.analytics.writer import BackgroundWriter
from coatcheck.engine.manager import SessionManager
from coatcheck.errors import ConfigError

__all__ = ["OFF", "Analytics", "analytics_for", "open_store"]

OFF = ("off", "none", "0", "false")
"""Values of the URL that mean analytics is off (``COATCHECK_ANALYTICS_URL=off``)."""


def open_store(url: str) -> AnalyticsStore:
    """The analytics store ``url`` names; ConfigError for a scheme it does not know."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    table = query.pop("table", DEFAULT_TABLE)
    try:
        gap = float(query.pop("visit_gap", "1800"))
    except ValueError:
        raise ConfigError("analytics store URL: visit_gap must be seconds") from None
    if gap <= 0:
        raise ConfigError("analytics store URL: visit_gap must be positive")
    if parts.scheme == "sqlite":
        from coatcheck.analytics.sqlite_store import SQLiteAnalytics

        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return SQLiteAnalytics(path or ":memory:", table, gap)
    if parts.scheme in ("postgresql", "postgres"):
        from coatcheck.analytics.postgres_store import PostgresAnalytics

        dsn = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query)))
        return PostgresAnalytics(dsn, table, gap)
    raise ConfigError(
        f"analytics store URL: unknown scheme {parts.scheme!r} (sqlite:// or postgresql://)"
    )


@dataclass(frozen=True, slots=True)
class Analytics:
    store: AnalyticsStore
    writer: BackgroundWriter[Hit]
    recorder: PageRecorder
    sink: StoreSink

    @classmethod
    def build(
        cls,
        store: AnalyticsStore,
        *,
        gate: ConsentGate = consent_gate,
        capacity: int = 10_000,
        batch: int = 500,
    ) -> Analytics:
        writer: BackgroundWriter[Hit] = BackgroundWriter(
            store.write_batch, capacity=capacity, batch=batch
        )
        return cls(store, writer, PageRecorder(writer, gate), StoreSink(writer))

    @classmethod
    def from_url(cls, url: str, *, gate: ConsentGate = consent_gate) -> Analytics:
        return cls.build(open_store(url), gate=gate)

    def attach(self, manager: SessionManager) -> Analytics:
        """Send ``manager``'s lifecycle events to this store too; remembered as the
        manager's analytics, so every edge over it records here."""
        if self.sink not in manager.sinks:
            manager.sinks.append(self.sink)
        with _LOCK:
            _BY_MANAGER[manager] = self
        return self

    def close(self) -> None:
        """Write what is queued, then close the store."""
        self.writer.close()
        self.store.close()


_BY_MANAGER: weakref.WeakKeyDictionary[SessionManager, Analytics | None] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def analytics_for(manager: SessionManager) -> Analytics | None:
    """The analytics of ``manager``: the one attached to it, else built (once) from its
    config's ``analytics_url``; None when analytics is off. What every edge calls when it
    is built."""
    with _LOCK:
        if manager in _BY_MANAGER:
            return _BY_MANAGER[manager]
    url = manager.config.analytics_url
    if not url or url.strip().lower() in OFF:
        with _LOCK:
            _BY_MANAGER[manager] = None
        return None
    analytics = Analytics.from_url(url)
    atexit.register(analytics.writer.close)
    return analytics.attach(manager)
