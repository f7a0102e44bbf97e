"""The store contract fixture: every store, on both its async and its sync path.

A backend joins the suite by adding a module to ``factories/`` whose ``FACTORIES`` maps a
name to a context manager that yields a fresh, empty store talking to its real server (or
fails, under CI, when that server is missing). Nothing else changes.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import pkgutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from coatcheck.stores import Store

StoreFactory = Callable[[Path], contextlib.AbstractContextManager[Store]]


def _discover() -> dict[str, StoreFactory]:
    """Collect ``FACTORIES`` from every module in ``tests/conformance/factories/``."""
    found: dict[str, StoreFactory] = {}
    package = Path(__file__).parent / "factories"
    for module_info in sorted(pkgutil.iter_modules([str(package)]), key=lambda m: m.name):
        module = importlib.import_module(f"tests.conformance.factories.{module_info.name}")
        found.update(module.FACTORIES)
    return found


STORE_FACTORIES: dict[str, StoreFactory] = _discover()


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
        if mode == "async":
            # Async pools must be closed on the loop that opened them.
            await real.close()
