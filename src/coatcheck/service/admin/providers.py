"""The dashboard's figures from what the service runs: the analytics store's summary (the
document of ``coatcheck analytics report --json``), the consent ledger's shares, and the
security events of this process.

``ServiceData`` adapts the analytics document to the shapes the charts read (see the
package docstring): ``visitors`` becomes the count of distinct sessions, series buckets get
epoch starts, and "active sessions per hour" is the hour's distinct sessions. Consent
shares are computed from the ledger: of the sessions whose latest row falls in the range,
the share whose choice in force allows each category, and the share that sent GPC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from coatcheck.analytics.figures import summary as analytics_summary
from coatcheck.analytics.setup import Analytics
from coatcheck.core.events import SessionEvent
from coatcheck.privacy.ledger import ConsentLedger
from coatcheck.service.admin.data import RecentEvents

__all__ = ["ServiceData", "adapt_summary", "consent_shares"]

CATEGORIES = ("functional", "analytics", "marketing")


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def adapt_summary(document: Mapping[str, Any]) -> dict[str, Any]:
    """The analytics document in the dashboard's shapes (a copy; the input is kept)."""
    out = dict(document)
    visitors = document.get("visitors")
    if isinstance(visitors, Mapping):
        out["visitors"] = visitors.get("sessions", 0)
        out["visitors_users"] = visitors.get("users", 0)
    series = document.get("series")
    if isinstance(series, Mapping):
        adapted: dict[str, list[dict[str, Any]]] = {}
        for period, buckets in series.items():
            rows = []
            for bucket in buckets if isinstance(buckets, list) else []:
                row = dict(bucket)
                row["start"] = _epoch(bucket.get("start"))
                row.setdefault("active", bucket.get("visitors", 0))
                rows.append(row)
            adapted[period] = rows
        out["series"] = adapted
    return out


def consent_shares(rows: list[dict[str, Any]], since: float, until: float) -> dict[str, Any]:
    """Shares granted per category and the GPC share, over the sessions whose latest ledger
    row was recorded in ``[since, until)``."""
    latest: dict[str, dict[str, Any]] = {}
    gpc: set[str] = set()
    for row in rows:
        at = _epoch(row.get("recorded_at"))
        handle = row.get("handle")
        if at is None or not isinstance(handle, str) or not since <= at < until:
            continue
        latest[handle] = row
        if row.get("method") == "gpc":
            gpc.add(handle)
    sessions = len(latest)
    allowed = [set(row.get("allowed") or ()) for row in latest.values()]
    return {
        "sessions": sessions,
        "categories": {
            c: (sum(1 for a in allowed if c in a) / sessions if sessions else 0.0)
            for c in CATEGORIES
        },
        "gpc_share": len(gpc) / sessions if sessions else 0.0,
    }


class ServiceData:
    """A ``DashboardData`` over the service's analytics (None: off), its consent ledger
    (None: none) and ``recent``, the security events of this process."""

    def __init__(
        self,
        analytics: Analytics | None,
        ledger: ConsentLedger | None,
        recent: RecentEvents,
    ) -> None:
        self.analytics = analytics
        self.ledger = ledger
        self.recent = recent

    async def summary(
        self, since: float, until: float, route: str | None = None
    ) -> dict[str, Any] | None:
        if self.analytics is None:
            return None
        store = self.analytics.store
        document = await asyncio.to_thread(analytics_summary, store, since, until, route)
        return adapt_summary(document)

    async def security_events(self, limit: int) -> list[SessionEvent]:
        return self.recent.latest(limit)

    async def consent(self, since: float, until: float) -> dict[str, Any] | None:
        if self.ledger is None:
            return None
        rows = await asyncio.to_thread(self.ledger.rows)
        return consent_shares(rows, since, until)


def service_data(service: Any, recent: RecentEvents) -> ServiceData | None:
    """The dashboard's figures for ``service`` (a ``service.context.Service``): its
    analytics and the consent ledger among its privacy holders; None when it has neither
    (the dashboard then shows this process's security events only)."""
    analytics = getattr(service, "analytics", None)
    registry = getattr(service, "privacy", None)
    holders = getattr(registry, "holders", ()) if registry is not None else ()
    ledger = next((h for h in holders if isinstance(h, ConsentLedger)), None)
    if analytics is None and ledger is None:
        return None
    return ServiceData(analytics, ledger, recent)
