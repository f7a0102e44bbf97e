"""The stores that need no server: memory and the embedded SQLite default."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from coatcheck.stores import MemoryStore, SQLiteStore, Store


@contextlib.contextmanager
def memory_store(tmp_path: Path) -> Iterator[Store]:
    yield MemoryStore()


@contextlib.contextmanager
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = SQLiteStore(tmp_path / "sessions.db")
    try:
        yield store
    finally:
        store.close_sync()


FACTORIES = {"memory": memory_store, "sqlite": sqlite_store}
