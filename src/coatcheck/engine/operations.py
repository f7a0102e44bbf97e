"""Store operations as data, and the two drivers that run them.

The manager writes each of its procedures once, as a generator that yields operations
(``Get(key)``, ``Apply(key, patch)``, ...) and receives their results. ``run_async`` awaits
the store's async methods, ``run_sync`` calls its sync ones: the sequence of steps exists
in one place, and neither path can drift from the other.

``Get``, ``Create``, ``Apply``, ``Rename`` and ``Delete`` are the core contract every store
meets; ``GetByHandle``, ``DeleteHandle`` and ``ListUser`` need a capability
(``HandleIndex``, ``UserIndex``), which the manager makes sure of when it is built (the
configuration that yields them) and which they ask for again by type when they run.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from coatcheck.core.record import Patch, SessionRecord
from coatcheck.core.steps import drive_async, drive_sync
from coatcheck.errors import StoreUnavailable
from coatcheck.stores.base import HandleIndex, Store, UserIndex

T = TypeVar("T")


class Op:
    """One store call."""

    __slots__ = ()

    async def run(self, store: Store) -> Any:
        raise NotImplementedError

    def run_sync(self, store: Store) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Get(Op):
    key: str

    async def run(self, store: Store) -> SessionRecord | None:
        return await store.get(self.key)

    def run_sync(self, store: Store) -> SessionRecord | None:
        return store.get_sync(self.key)


@dataclass(frozen=True, slots=True)
class Create(Op):
    record: SessionRecord

    async def run(self, store: Store) -> None:
        await store.create(self.record)

    def run_sync(self, store: Store) -> None:
        store.create_sync(self.record)


@dataclass(frozen=True, slots=True)
class Apply(Op):
    key: str
    patch: Patch

    async def run(self, store: Store) -> bool:
        return await store.apply(self.key, self.patch)

    def run_sync(self, store: Store) -> bool:
        return store.apply_sync(self.key, self.patch)


@dataclass(frozen=True, slots=True)
class Rename(Op):
    old_key: str
    new_key: str
    patch: Patch

    async def run(self, store: Store) -> bool:
        return await store.rename(self.old_key, self.new_key, self.patch)

    def run_sync(self, store: Store) -> bool:
        return store.rename_sync(self.old_key, self.new_key, self.patch)


@dataclass(frozen=True, slots=True)
class Delete(Op):
    key: str

    async def run(self, store: Store) -> bool:
        return await store.delete(self.key)

    def run_sync(self, store: Store) -> bool:
        return store.delete_sync(self.key)


Steps = Generator[Op, Any, T]


async def run_async(steps: Steps[T], store: Store | None) -> T:
    """Drive ``steps`` with the store's async methods (None: steps that need no store,
    such as a cookie session's without a revocation store)."""
    if store is None:
        return await drive_async(steps, _no_store_async)
    return await drive_async(steps, lambda op: op.run(store))


def run_sync(steps: Steps[T], store: Store | None) -> T:
    """Drive ``steps`` with the store's sync methods (None: as for ``run_async``)."""
    if store is None:
        return drive_sync(steps, _no_store)
    return drive_sync(steps, lambda op: op.run_sync(store))


def _no_store(op: Op) -> Any:
    raise AssertionError(f"{op!r} yielded by a procedure that has no store to run it")


async def _no_store_async(op: Op) -> Any:
    return _no_store(op)


@dataclass(frozen=True, slots=True)
class GetByHandle(Op):
    handle: str

    async def run(self, store: Store) -> SessionRecord | None:
        return await HandleIndex.of(store, "following a rotated session").get_by_handle(self.handle)

    def run_sync(self, store: Store) -> SessionRecord | None:
        return HandleIndex.of(store, "following a rotated session").get_by_handle_sync(self.handle)


@dataclass(frozen=True, slots=True)
class DeleteHandle(Op):
    handle: str

    async def run(self, store: Store) -> SessionRecord | None:
        return await HandleIndex.of(store, "ending a session by handle").delete_handle(self.handle)

    def run_sync(self, store: Store) -> SessionRecord | None:
        return HandleIndex.of(store, "ending a session by handle").delete_handle_sync(self.handle)


@dataclass(frozen=True, slots=True)
class ListUser(Op):
    user_id: str
    now: float

    async def run(self, store: Store) -> list[SessionRecord]:
        return await UserIndex.of(store, "a session limit").list_user(self.user_id, self.now)

    def run_sync(self, store: Store) -> list[SessionRecord]:
        return UserIndex.of(store, "a session limit").list_user_sync(self.user_id, self.now)


@dataclass(frozen=True, slots=True)
class Upsert(Op):
    """Apply ``patch`` to ``record.key``, or create ``record`` when nothing is there.

    Two writers racing to create the same record: the loser's insert fails (a unique key)
    and its patch is then applied to the winner's record, so neither revocation is lost.
    """

    patch: Patch
    record: SessionRecord

    async def run(self, store: Store) -> None:
        if await store.apply(self.record.key, self.patch):
            return
        try:
            await store.create(self.record)
        except StoreUnavailable:
            if not await store.apply(self.record.key, self.patch):
                raise

    def run_sync(self, store: Store) -> None:
        if store.apply_sync(self.record.key, self.patch):
            return
        try:
            store.create_sync(self.record)
        except StoreUnavailable:
            if not store.apply_sync(self.record.key, self.patch):
                raise


@dataclass(frozen=True, slots=True)
class Mark(Op):
    """Store ``record``, a marker (no data, no user) whose key may already hold an older
    marker of the same kind: created in one write as a rule; when the key is taken (the
    insert of a SQL store fails), the older marker is overwritten with this one's deadlines
    and metadata instead."""

    record: SessionRecord

    def _refresh(self) -> Patch:
        r = self.record
        fields = {"expires_at": r.expires_at, "absolute_at": r.absolute_at, "meta": r.meta}
        return Patch(fields=fields)

    async def run(self, store: Store) -> None:
        try:
            await store.create(self.record)
        except StoreUnavailable:
            if not await store.apply(self.record.key, self._refresh()):
                raise

    def run_sync(self, store: Store) -> None:
        try:
            store.create_sync(self.record)
        except StoreUnavailable:
            if not store.apply_sync(self.record.key, self._refresh()):
                raise
