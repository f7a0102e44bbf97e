"""``page_views``: the analytics store as a holder of personal data (the privacy layer's
contract), so a user's export holds their page views and events and an erasure deletes them,
and retention (13 months by default) reaches them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from coatcheck.analytics.setup import open_store
from coatcheck.analytics.store import AnalyticsStore
from coatcheck.privacy.contract import personal_data_holder

if TYPE_CHECKING:
    from coatcheck.privacy.registry import Deployment


@personal_data_holder
class PageViews:
    """The page views and custom events of ``store`` that name a user."""

    name = "page_views"
    retention = ("analytics",)

    def __init__(self, store: AnalyticsStore) -> None:
        self.store = store

    @classmethod
    def from_deployment(cls, deployment: Deployment) -> PageViews | None:
        """The holder over the analytics store a deployment records in
        (``SessionConfig.analytics_url``); None when analytics is off."""
        url = deployment.config.analytics_url
        return cls(open_store(url)) if url else None

    async def export_user(self, user_id: str) -> Mapping[str, Any]:
        return await asyncio.to_thread(self.store.export_user_sync, user_id)

    async def erase_user(self, user_id: str) -> int:
        return await asyncio.to_thread(self.store.erase_user_sync, user_id)

    async def purge_older_than(self, cutoffs: Mapping[str, float], batch: int) -> int:
        """Retention: the rows older than the ``analytics`` period's cutoff."""
        return await asyncio.to_thread(self.store.purge_before, cutoffs["analytics"], batch)

    async def close(self) -> None:
        await asyncio.to_thread(self.store.close)
