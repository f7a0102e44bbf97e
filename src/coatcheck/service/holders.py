"""The holders of personal data a deployment has: every class declared with
``@personal_data_holder`` in the layers that keep personal data (``privacy``,
``analytics``), each built from the deployment's settings.

Discovery walks those packages rather than naming modules, so a new holder joins export,
erasure and retention by being declared, and a test checks none is left out. It lives here,
in a layer above both, because ``privacy`` may not import ``analytics``; the command line
uses it too. It needs no web framework.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Final

from coatcheck.core.config import SessionConfig
from coatcheck.privacy.contract import DECLARED_HOLDERS
from coatcheck.privacy.database import deployment_database
from coatcheck.privacy.registry import Deployment, PrivacyRegistry
from coatcheck.privacy.settings import PrivacySettings
from coatcheck.stores.base import AnyStore

HOLDER_PACKAGES: Final = ("coatcheck.privacy", "coatcheck.analytics")
"""The layers whose modules may declare holders."""


def declared_holders() -> dict[str, type]:
    """Every declared holder class, by name in alphabetical order, once each module of the
    holder packages is imported (a module that needs a missing optional package raises its
    ImportError). The order is the names', not the imports': which module a process
    imported first must not change an export's sections or an erasure's report."""
    for package_name in HOLDER_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            try:
                importlib.import_module(info.name)
            except ImportError as exc:
                # A backend whose client library is not installed (psycopg for the
                # PostgreSQL analytics store on a SQLite deployment) holds nothing here.
                if (exc.name or "").startswith("coatcheck"):
                    raise
    return dict(sorted(DECLARED_HOLDERS.items()))


def deployment(
    store: AnyStore,
    store_url: str,
    config: SessionConfig,
    clock: Callable[[], float],
    settings: PrivacySettings,
) -> Deployment:
    return Deployment(
        store=store,
        config=config,
        clock=clock,
        database=deployment_database(store_url, settings.database_url),
        settings=settings,
    )


def default_registry(deployment: Deployment) -> PrivacyRegistry:
    """The registry of every declared holder that ``deployment`` can build."""
    return PrivacyRegistry.for_deployment(deployment, declared_holders().values())
