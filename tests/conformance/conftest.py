"""The store contract fixture: every store, on both its async and its sync path.

A backend joins the suite by adding a module to ``factories/`` whose ``FACTORIES`` maps a
name to a context manager that yields a fresh, empty store talking to its real server (or
fails, under CI, when that server is missing). Nothing else changes.

The factory's return annotation names the store's class (``Iterator[RedisStore]``): a test
marked ``needs(UserIndex, ...)`` runs only for the stores whose class declares those
capabilities (``coatcheck.stores.base.capabilities``), and the core tests run for all.
Stores are told apart by their declared type, before any server is reached, so a store
without a capability is not asked for it, rather than skipped.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import pkgutil
import typing
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from coatcheck.stores import Store, capabilities
from coatcheck.stores.base import Capability

StoreFactory = Callable[[Path], contextlib.AbstractContextManager[Store]]


def needs(*required: type[Capability]) -> pytest.MarkDecorator:
    """Mark a contract test (or a module) as one for stores with these capabilities."""
    return pytest.mark.needs.with_args(*required)  # (a lone class would be "decorated")


def store_class(factory: StoreFactory) -> type[Store]:
    """The concrete store class a factory's return annotation names."""
    (kind,) = typing.get_args(typing.get_type_hints(factory)["return"])
    assert isinstance(kind, type) and issubclass(kind, Store) and not inspect.isabstract(kind), (
        f"{factory.__name__} must be annotated Iterator[<its concrete store class>], "
        f"not Iterator[{kind!r}]: the suite reads the store's capabilities from it"
    )
    return kind


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(*capabilities): a contract test for stores with these capabilities"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_name" in metafunc.fixturenames:
        required = {c for mark in metafunc.definition.iter_markers("needs") for c in mark.args}
        names = [
            name
            for name, factory in STORE_FACTORIES.items()
            if required <= capabilities(store_class(factory))
        ]
        assert names, f"no store has {sorted(c.__name__ for c in required)}"
        metafunc.parametrize("store_name", names)
    if "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", ["async", "sync"])


@pytest.fixture
async def store(store_name: str, mode: str, tmp_path: Path) -> AsyncIterator[Driver]:
    with STORE_FACTORIES[store_name](tmp_path) as real:
        yield Driver(real, mode)
        if mode == "async":
            # Async pools must be closed on the loop that opened them.
            await real.close()
