"""The stores that need no server: memory, the embedded SQLite default, and a store of the
core contract only (``tests.support.core_store``), which runs the core tests and no other."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from coatcheck.stores import MemoryStore, SQLiteStore
from tests.support.core_store import CoreOnlyStore


@contextlib.contextmanager
def memory_store(tmp_path: Path) -> Iterator[MemoryStore]:
    yield MemoryStore()


@contextlib.contextmanager
def core_only_store(tmp_path: Path) -> Iterator[CoreOnlyStore]:
    yield CoreOnlyStore()


@contextlib.contextmanager
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "sessions.db")
    try:
        yield store
    finally:
        store.close_sync()


FACTORIES = {"memory": memory_store, "sqlite": sqlite_store, "core-only": core_only_store}
