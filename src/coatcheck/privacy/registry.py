"""PrivacyRegistry: export, erasure and retention over the holders it is given, knowing
nothing of any of them but the contract (``contract``).

``export`` (GDPR Art. 15 and 20) asks every holder for what it keeps about the user and
puts the answers in one JSON document, a section per holder. ``erase`` (Art. 17) asks
every holder to delete it, keeps one tombstone (``tombstones``) and then lets each holder
that can leave copies in its files (``Scrubbing``) scrub them. ``purge`` (Art. 5(1)(e))
gives each holder with a retention period (``Retaining``) the cutoffs of the periods in
force. A deployment's registry is built from its settings (``Deployment``): each declared
holder class builds itself from it through ``from_deployment``, or declines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from coatcheck.core.config import SessionConfig
from coatcheck.core.events import EventSink
from coatcheck.core.record import UserId, user_key
from coatcheck.errors import ConfigError
from coatcheck.privacy.contract import (
    PersonalDataHolder,
    Retaining,
    Scrubbing,
    json_time,
)
from coatcheck.privacy.database import Database
from coatcheck.privacy.settings import PrivacySettings
from coatcheck.privacy.tombstones import Tombstones
from coatcheck.stores.base import AnyStore

FORMAT: Final = "coatcheck.export/1"
"""The ``format`` of an export document; a later shape gets another number."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """What a holder class may build itself from: the session store, the engine's settings
    and clock, the privacy layer's SQL database (None on a deployment without one) and its
    settings."""

    store: AnyStore
    config: SessionConfig
    clock: Callable[[], float]
    database: Database | None
    settings: PrivacySettings = field(default_factory=PrivacySettings)


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure did: items removed per holder, and the tombstone's day."""

    user_id: str
    removed: Mapping[str, int]
    erased_on: str


class PrivacyRegistry:
    """The holders of one deployment, and the tombstones its erasures leave."""

    def __init__(
        self,
        holders: Iterable[PersonalDataHolder],
        *,
        tombstones: Tombstones | None = None,
        clock: Callable[[], float],
        retention: Mapping[str, float] | None = None,
        retention_interval: float = 0.0,
    ) -> None:
        self.holders: tuple[PersonalDataHolder, ...] = tuple(holders)
        names = [h.name for h in self.holders]
        if len(set(names)) != len(names):
            raise ConfigError(f"two holders share a name: {sorted(names)}")
        self.tombstones = tombstones
        self.clock = clock
        self.retention = dict(retention) if retention is not None else None
        self.retention_interval = retention_interval
        """Seconds between two retention runs of a long-running process (0: none)."""

    @classmethod
    def for_deployment(cls, deployment: Deployment, classes: Iterable[type]) -> PrivacyRegistry:
        """The registry of ``deployment``: every class of ``classes`` (the declared
        holders) that builds a holder from it, and its tombstones when it has a database."""
        holders = []
        for holder_class in classes:
            build = getattr(holder_class, "from_deployment", None)
            if build is None:
                raise ConfigError(
                    f"{holder_class.__qualname__} is a personal-data holder without "
                    "from_deployment(deployment): a deployment cannot build it"
                )
            holder = build(deployment)
            if holder is not None:
                holders.append(holder)
        database = deployment.database
        tombstones = (
            Tombstones(database, deployment.settings.tombstone_secret)
            if database is not None
            else None
        )
        periods = deployment.settings.retention
        return cls(
            holders,
            tombstones=tombstones,
            clock=deployment.clock,
            retention={name: getattr(periods, name) for name in periods.names()},
            retention_interval=deployment.settings.retention_interval,
        )

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.holders]

    @property
    def sinks(self) -> list[EventSink]:
        """The event sinks of holders that record the engine's events (the activity log):
        what the deployment's ``SessionManager(events=...)`` must be given."""
        found = (getattr(h, "event_sink", None) for h in self.holders)
        return [sink for sink in found if callable(sink)]

    def _tombstones(self) -> Tombstones:
        if self.tombstones is None:
            raise ConfigError(
                "erasure keeps a tombstone in a SQL database: set COATCHECK_PRIVACY_DB "
                "(sqlite:///... or postgresql://...) on a deployment whose store has none"
            )
        return self.tombstones

    # -- access and portability (Art. 15, 20) ------------------------------------------
    async def export(self, user_id: UserId) -> dict[str, Any]:
        """One JSON-ready document with everything every holder keeps about ``user_id``."""
        uid = user_key(user_id)
        sections: dict[str, Any] = {}
        for holder in self.holders:
            sections[holder.name] = dict(await holder.export_user(uid))
        erased = None
        if self.tombstones is not None and self.tombstones.secret:
            day = await asyncio.to_thread(self.tombstones.erased_on, uid)
            erased = {"on": day} if day is not None else None
        return {
            "format": FORMAT,
            "user_id": uid,
            "exported_at": json_time(self.clock()),
            "erased": erased,
            "holders": sections,
        }

    # -- erasure (Art. 17) -------------------------------------------------------------
    async def erase(self, user_id: UserId) -> Erasure:
        """Delete what every holder keeps about ``user_id``, keep one tombstone, scrub."""
        uid = user_key(user_id)
        tombstones = self._tombstones()
        tombstones.subject(uid)  # no secret: refused before anything is deleted
        removed: dict[str, int] = {}
        for holder in self.holders:
            removed[holder.name] = await holder.erase_user(uid)
        day = await asyncio.to_thread(tombstones.bury, uid, self.clock())
        for holder in self.holders:
            if isinstance(holder, Scrubbing):
                await holder.scrub()
        await asyncio.to_thread(tombstones.database.scrub)
        return Erasure(uid, removed, day)

    async def is_erased(self, user_id: UserId) -> bool:
        """Was ``user_id`` erased? A re-import of their data should then be refused."""
        return await asyncio.to_thread(self._tombstones().is_erased, user_id)

    # -- retention (Art. 5(1)(e)) ------------------------------------------------------
    async def purge(self, batch: int) -> dict[str, int]:
        """Delete, in each holder with a retention period, the rows past it; the number
        deleted per holder."""
        if self.retention is None:
            raise ConfigError("this registry was built without retention periods")
        now = self.clock()
        cutoffs = {name: now - period for name, period in self.retention.items()}
        purged: dict[str, int] = {}
        for holder in self.retaining():
            purged[holder.name] = await holder.purge_older_than(cutoffs, batch)
        return purged

    def retaining(self) -> Sequence[Any]:
        """The holders whose rows have a retention period."""
        return [h for h in self.holders if isinstance(h, Retaining)]

    async def close(self) -> None:
        """Write what holders queued (the activity log) and let go of the database."""
        for holder in self.holders:
            flush = getattr(holder, "flush", None)
            if callable(flush):
                await asyncio.to_thread(flush)
