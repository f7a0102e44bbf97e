"""The store contract fixture: every store, on both its async and its sync path.

A backend joins the suite by adding one factory to ``STORE_FACTORIES``: a context manager
that yields a fresh, empty store talking to its real server. Nothing else changes.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck.stores import MemoryStore, SQLiteStore, Store

StoreFactory = Callable[[Path], contextlib.AbstractContextManager[Store]]


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


STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": memory_store,
    "sqlite": sqlite_store,
}


class Driver:
    """Calls a store's async methods (awaited) or its sync twins, behind one async face,
    so each contract test is written once and runs on both paths."""

    def __init__(self, store: Store, mode: str) -> None:
        self.store = store
        self.mode = mode

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if self.mode == "async":
            method = getattr(self.store, name)
            assert inspect.iscoroutinefunction(method), name

            return method  # type: ignore[no-any-return]

        sync = getattr(self.store, f"{name}_sync")

        async def call(*args: Any, **kwargs: Any) -> Any:
            return sync(*args, **kwargs)

        return call


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_name" in metafunc.fixturenames:
        metafunc.parametrize("store_name", list(STORE_FACTORIES))
    if "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", ["async", "sync"])


@pytest.fixture
async def store(store_name: str, mode: str, tmp_path: Path) -> AsyncIterator[Driver]:
    with STORE_FACTORIES[store_name](tmp_path) as real:
        yield Driver(real, mode)
