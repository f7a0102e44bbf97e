"""Session stores, chosen by URL through a scheme registry.

``from_url("sqlite:///var/lib/app/sessions.db")`` imports only the backend it needs, so
optional client libraries (redis-py, psycopg, ...) are required only by the apps that use
them. New backends register a scheme with ``register_scheme``; there is no if/elif ladder.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from coatcheck.stores.base import InlineStore, Store
from coatcheck.stores.memory import MemoryStore
from coatcheck.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from coatcheck.stores.cookie import CookieStore as CookieStore
    from coatcheck.stores.memcached import MemcachedStore as MemcachedStore
    from coatcheck.stores.postgres import PostgresStore as PostgresStore
    from coatcheck.stores.redis import RedisStore as RedisStore

__all__ = [
    "InlineStore",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "from_url",
    "register_scheme",
]

StoreFactory = Callable[[str], Store]

_SCHEMES: dict[str, str | StoreFactory] = {}


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


def register_scheme(scheme: str, factory: str | StoreFactory) -> None:
    """Map a URL scheme to a factory taking the full URL, or to ``"module:function"``
    (imported on first use, so the backend's client library stays optional)."""
    _SCHEMES[scheme.lower()] = factory


def from_url(url: str) -> Store:
    """Build the store a URL names, e.g. ``memory://`` or ``sqlite:///path/to.db``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    factory = _SCHEMES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(_SCHEMES))
        raise ValueError(f"unknown store URL scheme in {url!r}; known: {known}")
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        _SCHEMES[scheme] = factory
    return factory(url)


def _memory_from_url(url: str) -> Store:
    return MemoryStore()


def _sqlite_from_url(url: str) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:``;
    query options ``timeout`` (seconds) and ``synchronous``."""
    parts = urlsplit(url)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if parts.netloc:
        raise ValueError(f"sqlite URLs have no host: use sqlite:///path, got {url!r}")
    if not path:
        raise ValueError(f"sqlite URL {url!r} names no file")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    kwargs: dict[str, object] = {}
    if "timeout" in options:
        kwargs["timeout"] = float(options.pop("timeout"))
    if "synchronous" in options:
        kwargs["synchronous"] = options.pop("synchronous")
    if options:
        raise ValueError(f"unknown sqlite URL options: {', '.join(sorted(options))}")
    return SQLiteStore(path, **kwargs)  # type: ignore[arg-type]


register_scheme("memory", _memory_from_url)
register_scheme("sqlite", _sqlite_from_url)
register_scheme("redis", "coatcheck.stores.redis:from_url")
register_scheme("rediss", "coatcheck.stores.redis:from_url")
register_scheme("redis+sentinel", "coatcheck.stores.redis:from_url")
register_scheme("redis+cluster", "coatcheck.stores.redis:from_url")
register_scheme("cookie", "coatcheck.stores.cookie:from_url")
register_scheme("memcached", "coatcheck.stores.memcached:from_url")
register_scheme("postgresql", "coatcheck.stores.postgres:from_url")
register_scheme("postgres", "coatcheck.stores.postgres:from_url")
