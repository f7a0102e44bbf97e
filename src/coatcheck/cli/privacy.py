"""``coatcheck privacy export`` and ``erase``, and the retention part of ``coatcheck purge``:
the deployment's privacy registry (``service.holders``) over a store URL, with the
operator's mistakes as one line (``CommandError``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from coatcheck.cli.common import CommandError, managed, one_line, redacted
from coatcheck.engine.manager import SessionManager
from coatcheck.errors import ConfigError, InvalidUserId, StoreUnavailable
from coatcheck.privacy.registry import Erasure, PrivacyRegistry
from coatcheck.privacy.settings import PrivacySettings
from coatcheck.service.holders import default_registry, deployment

T = TypeVar("T")


@contextmanager
def registry_over(store_url: str) -> Iterator[tuple[SessionManager, PrivacyRegistry]]:
    """The manager and privacy registry of the deployment over ``store_url``, configured
    from the environment (``COATCHECK_*``)."""
    with managed(store_url) as manager:
        try:
            settings = PrivacySettings.from_env()
            built = deployment(manager.store, store_url, manager.config, manager.clock, settings)
        except ConfigError as exc:
            raise CommandError(one_line(exc)) from None
        try:
            yield manager, default_registry(built)
        except (ConfigError, InvalidUserId) as exc:
            raise CommandError(one_line(exc)) from None
        except StoreUnavailable as exc:
            raise CommandError(f"store unavailable: {redacted(store_url, one_line(exc))}") from None
        finally:
            if built.database is not None:
                with suppress(StoreUnavailable):
                    built.database.close()


def _run(manager: SessionManager, registry: PrivacyRegistry, call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` on an event loop of its own, closing the store's async clients (opened
    on that loop) before the loop ends."""

    async def main() -> T:
        try:
            return await call()
        finally:
            await registry.close()
            with suppress(StoreUnavailable):
                await manager.store.close()

    return asyncio.run(main())


def export_document(store_url: str, user_id: str) -> dict[str, Any]:
    with registry_over(store_url) as (manager, registry):
        return _run(manager, registry, lambda: registry.export(user_id))


def erase_user(store_url: str, user_id: str) -> Erasure:
    with registry_over(store_url) as (manager, registry):
        return _run(manager, registry, lambda: registry.erase(user_id))


def purge_retained(manager: SessionManager, store_url: str) -> dict[str, int]:
    """Rows past their retention period deleted, per holder that has one (none on a
    deployment without a privacy database)."""
    try:
        settings = PrivacySettings.from_env()
        built = deployment(manager.store, store_url, manager.config, manager.clock, settings)
    except ConfigError as exc:
        raise CommandError(one_line(exc)) from None
    try:
        registry = default_registry(built)
        if not registry.retaining():
            return {}
        return _run(manager, registry, lambda: registry.purge(manager.config.purge_batch_size))
    finally:
        if built.database is not None:
            with suppress(StoreUnavailable):
                built.database.close()
