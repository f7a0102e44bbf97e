"""Session stores, chosen by URL through a scheme registry (``registry``).

``from_url("sqlite:///var/lib/app/sessions.db")`` imports only the backend it needs, so
optional client libraries (redis-py, psycopg, ...) are required only by the apps that use
them. New backends register a scheme with ``register_scheme``; there is no if/elif ladder.

May import: ``coatcheck.core``, ``coatcheck.security``, ``coatcheck.errors`` and client
libraries. May not import: ``coatcheck.engine`` or anything above it: loading a store never
loads the engine. A store meets ``base.Store`` (or ``base.ClientSide``) and declares the
capabilities of ``base`` it has by inheriting them; what it cannot do it does not claim.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from coatcheck.stores.base import (
    AnyStore,
    ClientSide,
    Countable,
    HandleIndex,
    InlineStore,
    Lockable,
    Purgeable,
    Statistics,
    Store,
    UserIndex,
    capabilities,
)
from coatcheck.stores.memory import MemoryStore
from coatcheck.stores.registry import StoreFactory, from_url, register_scheme
from coatcheck.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from coatcheck.stores.cookie import CookieStore as CookieStore
    from coatcheck.stores.memcached import MemcachedStore as MemcachedStore
    from coatcheck.stores.postgres import PostgresStore as PostgresStore
    from coatcheck.stores.redis import RedisStore as RedisStore

__all__ = [
    "AnyStore",
    "ClientSide",
    "Countable",
    "HandleIndex",
    "InlineStore",
    "Lockable",
    "MemoryStore",
    "Purgeable",
    "SQLiteStore",
    "Statistics",
    "Store",
    "StoreFactory",
    "UserIndex",
    "capabilities",
    "from_url",
    "register_scheme",
]

_LAZY = {
    "CookieStore": "coatcheck.stores.cookie",
    "MemcachedStore": "coatcheck.stores.memcached",
    "PostgresStore": "coatcheck.stores.postgres",
    "RedisStore": "coatcheck.stores.redis",
}


def __getattr__(name: str) -> Any:
    """Backends with optional client libraries (cryptography, pymemcache, psycopg,
    redis-py) are imported on first use, so ``import coatcheck.stores`` works without
    them."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
