"""The scheme registry behind ``from_url``: a table from URL scheme to store factory.

Factories named as ``"module:function"`` strings are imported on first use, so a backend's
client library (redis-py, psycopg, pymemcache, cryptography) is needed only by the apps that
name its scheme, and this module imports no backend it does not build itself.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from coatcheck.errors import StoreURLError
from coatcheck.stores.base import AnyStore, Store
from coatcheck.stores.memory import MemoryStore
from coatcheck.stores.sqlite import SQLiteStore

ENV_DATA_KEYS = "COATCHECK_DATA_KEYS"
"""Set, it encrypts every server store ``from_url`` builds (see ``stores.encrypted``)."""

StoreFactory = Callable[[str], AnyStore]
"""Takes the full URL; builds a server-side ``Store`` or a ``ClientSide`` one."""

_SCHEMES: dict[str, str | StoreFactory] = {}


def register_scheme(scheme: str, factory: str | StoreFactory) -> None:
    """Map a URL scheme to a factory taking the full URL, or to ``"module:function"``
    (imported on first use, so the backend's client library stays optional)."""
    _SCHEMES[scheme.lower()] = factory


def from_url(url: str) -> AnyStore:
    """Build the store a URL names, e.g. ``memory://`` or ``sqlite:///path/to.db``; with
    ``COATCHECK_DATA_KEYS`` set, a server store comes wrapped by ``stores.encrypted``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    factory = _SCHEMES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(_SCHEMES))
        raise StoreURLError(f"unknown store URL scheme in {url!r}; known: {known}")
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        _SCHEMES[scheme] = factory
    store = factory(url)
    if isinstance(store, Store) and os.environ.get(ENV_DATA_KEYS, "").strip():
        # Data keys set: every server store this builds seals its sessions' data at rest.
        from coatcheck.stores.encrypted import encrypted_from_env

        return encrypted_from_env(store)
    return store


def _memory_from_url(url: str) -> Store:
    return MemoryStore()


def _sqlite_from_url(url: str) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:``;
    query options ``timeout`` (seconds) and ``synchronous``."""
    parts = urlsplit(url)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if parts.netloc:
        raise StoreURLError(f"sqlite URLs have no host: use sqlite:///path, got {url!r}")
    if not path:
        raise StoreURLError(f"sqlite URL {url!r} names no file")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    kwargs: dict[str, object] = {}
    if "timeout" in options:
        kwargs["timeout"] = float(options.pop("timeout"))
    if "synchronous" in options:
        kwargs["synchronous"] = options.pop("synchronous")
    if options:
        raise StoreURLError(f"unknown sqlite URL options: {', '.join(sorted(options))}")
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
