"""``memcached://`` store URLs. Anything wrong with one is a StoreURLError, raised when the
app starts rather than as a 503 on the first request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from coatcheck.errors import StoreURLError
from coatcheck.stores.memcached.store import MemcachedStore

_OPTIONS: dict[str, Callable[[str], Any]] = {
    "prefix": str,
    "timeout": float,
    "connect_timeout": float,
    "pool_size": int,
    "max_ttl": float,
}


def from_url(url: str) -> MemcachedStore:
    """``memcached://host[:port][?prefix=cc:&timeout=1&connect_timeout=1&pool_size=10]``.

    Timeouts are in seconds; ``max_ttl`` caps an item's lifetime in seconds. One server per
    store: memcached does not replicate, so spreading sessions over several servers only
    spreads the loss when one of them fails.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "memcached":
        raise StoreURLError(f"not a memcached URL (scheme {parts.scheme!r})")
    if parts.username or parts.password:
        raise StoreURLError("memcached URLs take no credentials (SASL is not supported)")
    if parts.path not in ("", "/"):
        raise StoreURLError(f"memcached URLs have no path, got {parts.path!r}")
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise StoreURLError(f"unknown memcached URL options: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, raw in options.items():
        try:
            kwargs[name] = _OPTIONS[name](raw)
        except ValueError:
            raise StoreURLError(f"memcached URL option {name}={raw!r} is invalid") from None
    try:
        port = parts.port or 11211
    except ValueError as exc:
        raise StoreURLError(f"memcached URL {url!r}: {exc}") from None
    host = parts.hostname or "127.0.0.1"
    try:
        return MemcachedStore(host, port, **kwargs)
    except ValueError as exc:
        raise StoreURLError(f"memcached URL {url!r}: {exc}") from None
