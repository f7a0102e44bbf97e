"""The service's periodic retention task (GDPR Art. 5(1)(e)): every
``COATCHECK_RETENTION_INTERVAL`` seconds, the expired sessions and every holder's rows past
their retention period are deleted in batches, as ``coatcheck purge`` deletes them. Each
node of a cluster runs its own; the purges are batched and skip what another holds, so
they never fight. A failure is logged and the next run tries again.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from coatcheck.engine.manager import SessionManager
from coatcheck.errors import CoatcheckError
from coatcheck.privacy.registry import PrivacyRegistry

logger = logging.getLogger("coatcheck.service")


class RetentionTask:
    """Runs ``run_once`` at start and then every ``registry.retention_interval`` seconds."""

    def __init__(self, manager: SessionManager, registry: PrivacyRegistry) -> None:
        self.manager = manager
        self.registry = registry
        self.runs = 0
        """Completed runs (tests wait on it)."""
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> dict[str, int]:
        """One pass; the rows deleted per kind (``sessions`` for the expired ones)."""
        purged = {"sessions": await self.manager.purge_expired()}
        purged.update(await self.registry.purge(self.manager.config.purge_batch_size))
        return purged

    async def _loop(self, interval: float) -> None:
        while True:
            try:
                purged = await self.run_once()
                if any(purged.values()):
                    logger.info("retention: purged %s", purged)
            except CoatcheckError as exc:
                logger.warning("retention run failed (next in %gs): %s", interval, exc)
            self.runs += 1
            await asyncio.sleep(interval)

    def start(self) -> None:
        interval = self.registry.retention_interval
        if interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(interval))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
