"""No holder of personal data is forgotten: every class in the package that implements the
personal-data contract is declared, and the registry the command line and the service build
holds one of each; export and erasure reach holders only through that registry."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import coatcheck
from coatcheck.core.config import SessionConfig
from coatcheck.privacy import contract
from coatcheck.privacy.contract import DECLARED_HOLDERS, personal_data_holder
from coatcheck.privacy.database import database_from_url
from coatcheck.privacy.registry import Deployment
from coatcheck.privacy.settings import PrivacySettings
from coatcheck.service import holders as holders_module
from coatcheck.service.holders import declared_holders, default_registry
from coatcheck.stores.sqlite import SQLiteStore
from tests.support.clock import FakeClock

SRC = Path(coatcheck.__file__).parent


def implementing_classes() -> set[type]:
    """Every class of every module of the package that has the contract's members (a
    protocol with a data member cannot be asked ``issubclass``, so they are read)."""
    found: set[type] = set()
    for info in pkgutil.walk_packages(coatcheck.__path__, "coatcheck."):
        if info.name.endswith("__main__"):  # running it is the command line
            continue
        module = importlib.import_module(info.name)
        for cls in list(vars(module).values()):
            if not issubclass(type(cls), type) or cls.__module__ != module.__name__:
                continue
            if getattr(cls, "_is_protocol", False):
                continue
            # Static lookups: a framework's class may run code on attribute access.
            members = {
                n: inspect.getattr_static(cls, n, None)
                for n in ("name", "export_user", "erase_user")
            }
            if (
                isinstance(members["name"], str)
                and inspect.iscoroutinefunction(members["export_user"])
                and inspect.iscoroutinefunction(members["erase_user"])
            ):
                found.add(cls)
    return found


def test_every_holder_is_declared_and_in_the_default_registry(tmp_path: Path) -> None:
    classes = implementing_classes()
    assert {c.__name__ for c in classes} >= {
        "SessionsHolder",
        "ActivityLog",
        "ConsentLedger",
        "PageViews",
    }
    declared = set(DECLARED_HOLDERS.values())
    assert classes == declared
    db = tmp_path / "app.db"
    store, database = SQLiteStore(db), database_from_url(f"sqlite:///{db}")
    try:
        deployment = Deployment(
            store,
            SessionConfig(analytics_url=f"sqlite:///{tmp_path / 'analytics.db'}"),
            FakeClock(),
            database,
            PrivacySettings(tombstone_secret="s" * 16),
        )
        registry = default_registry(deployment)
        assert sorted(registry.names) == sorted(c.name for c in classes)  # type: ignore[attr-defined]
        assert {type(h) for h in registry.holders} == classes
    finally:
        database.close()
        store.close_sync()


def test_holders_come_in_the_order_of_their_names_whatever_was_imported_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An export's sections and an erasure's report follow the holders' order; it must not
    depend on which module a process happened to import first."""
    declared_holders()  # every holder module imported
    backwards = dict(reversed(list(DECLARED_HOLDERS.items())))
    monkeypatch.setattr(contract, "DECLARED_HOLDERS", backwards)
    monkeypatch.setattr(holders_module, "DECLARED_HOLDERS", backwards)
    assert list(backwards) != sorted(backwards)  # the registration order, turned round
    names = list(declared_holders())
    assert names == sorted(names)
    assert {"activity", "consent", "sessions"} <= set(names)


def test_a_holder_without_a_name_or_with_a_taken_one_is_refused() -> None:
    class Nameless:
        async def export_user(self, user_id: str) -> dict[str, object]:
            return {}

        async def erase_user(self, user_id: str) -> int:
            return 0

    with pytest.raises(TypeError, match="non-empty class attribute 'name'"):
        personal_data_holder(Nameless)

    class Impostor(Nameless):
        name = "sessions"

    with pytest.raises(TypeError, match="two personal-data holders named 'sessions'"):
        personal_data_holder(Impostor)
    assert DECLARED_HOLDERS["sessions"].__name__ == "SessionsHolder"


def test_export_and_erase_name_no_holder() -> None:
    """The registry, the CLI's and the service's calls know holders by the contract only."""
    names = {c.name for c in DECLARED_HOLDERS.values()}  # type: ignore[attr-defined]
    holder_classes = {c.__name__ for c in DECLARED_HOLDERS.values()}
    for path in (
        "privacy/registry.py",
        "cli/privacy.py",
        "service/rights.py",
        "service/holders.py",
    ):
        source = (SRC / path).read_text()
        for word in holder_classes:
            assert word not in source, f"{path} names {word}"
        for name in names:
            assert not re.search(rf'"{name}"', source), f"{path} names the section {name!r}"
