"""Where and how the Redis store connects, and how a store URL says it.

A URL is configuration: anything wrong with one (a scheme, a port, a path, an option that
does not parse or does not apply) is a StoreURLError naming the problem, raised when the
app builds its store rather than as a 503 on the first request. Messages show the URL
with its passwords masked (``***``). ``RedisOptions`` built in code check the same rules
and raise ConfigError (both are ValueErrors).

No I/O here; ``clients.py`` turns options into redis-py clients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from coatcheck.errors import ConfigError, StoreURLError

DEFAULT_PREFIX = "coatcheck:"

Mode = Literal["standalone", "sentinel", "cluster"]


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """Where and how to connect, parsed from a URL by ``RedisOptions.from_url``.

    ``timeout`` bounds each operation (socket reads and writes, and the wait for a free
    connection); ``connect_timeout`` bounds opening a connection; ``max_connections`` caps
    operations in flight per process and path (sync and async each have their own pool).
    """

    mode: Mode
    hosts: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    tls: bool = False
    service_name: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    prefix: str = DEFAULT_PREFIX
    timeout: float = 2.0
    connect_timeout: float = 1.0
    max_connections: int = 50
    ssl: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ConfigError("a Redis URL needs at least one host")
        for host, port in self.hosts:
            if not host:
                raise ConfigError("empty host in a Redis URL")
            if not 0 < port < 65536:
                raise ConfigError(f"port {port} of {host} is not between 1 and 65535")
        if "{" in self.prefix or "}" in self.prefix:
            raise ConfigError("the key prefix must not contain { or } (they pick cluster slots)")
        if not (0 < self.timeout < math.inf and 0 < self.connect_timeout < math.inf):
            raise ConfigError("timeouts must be positive numbers of seconds")
        if self.max_connections < 1:
            raise ConfigError("max_connections must be at least 1")
        if self.db < 0:
            raise ConfigError(f"database {self.db} is negative")
        if self.mode == "cluster" and self.db != 0:
            raise ConfigError("Redis Cluster has only database 0")
        if self.mode == "sentinel" and not self.service_name:
            raise ConfigError("a redis+sentinel URL names the master: redis+sentinel://h:p/name")
        if self.ssl and not self.tls:
            raise ConfigError(
                f"{', '.join(sorted(self.ssl))} without TLS: use rediss:// (or ssl=true "
                "for Sentinel and Cluster)"
            )

    @classmethod
    def from_url(cls, url: str) -> RedisOptions:
        """Parse ``redis://``, ``rediss://``, ``redis+sentinel://`` or ``redis+cluster://``.

        Forms: ``redis://[user:password@]host[:port][/db]``,
        ``redis+sentinel://[user:password@]h1:26379,h2:26379/master[/db]``,
        ``redis+cluster://[user:password@]h1:7000,h2:7001``. Query options: ``prefix``,
        ``timeout``, ``connect_timeout``, ``max_connections``, ``db``, ``ssl`` (TLS for
        Sentinel and Cluster; ``rediss://`` for a single server), ``ssl_ca_certs``,
        ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``, ``ssl_check_hostname``,
        ``sentinel_username``, ``sentinel_password`` (when the Sentinels have their own).
        Raises StoreURLError, naming what is wrong.
        """
        try:
            return _parse(url)
        except ValueError as exc:  # ConfigError included: the options' own checks
            if "://" not in url:  # nothing to show: it may be credentials without a scheme
                raise StoreURLError(f"not a Redis store URL: {exc}") from None
            raise StoreURLError(f"Redis store URL {redact(url)!r}: {exc}") from None


# -- the URL grammar ---------------------------------------------------------------------
_SCHEMES: dict[str, tuple[Mode, bool, int]] = {
    "redis": ("standalone", False, 6379),
    "rediss": ("standalone", True, 6379),
    "redis+sentinel": ("sentinel", False, 26379),
    "redis+cluster": ("cluster", False, 6379),
}
"""Scheme -> (mode, TLS, default port)."""

_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS.update({"0": False, "false": False, "no": False, "off": False})


def _flag(value: str) -> bool:
    return _FLAGS[value.strip().lower()]


_SSL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": str,
    "ssl_check_hostname": _flag,
}

_OPTIONS: dict[str, Callable[[str], Any]] = {
    "prefix": str,
    "timeout": float,
    "connect_timeout": float,
    "max_connections": int,
    "db": int,
    "sentinel_username": str,
    "sentinel_password": str,
}

_KINDS: dict[Callable[[str], Any], str] = {
    float: "a number",
    int: "a whole number",
    _flag: "a yes or no (true/false, 1/0, yes/no, on/off)",
}

_SENTINEL_ONLY = frozenset({"sentinel_username", "sentinel_password"})

_SECRET_OPTIONS = frozenset({"sentinel_password"})


def _parse(url: str) -> RedisOptions:
    """The options a URL names; ValueError with the problem (not the URL) otherwise."""
    scheme, userinfo, hostlist, path, query = _split(url)
    known = _SCHEMES.get(scheme.lower())
    if known is None:
        raise ValueError(f"scheme {scheme!r} is not redis, rediss, redis+sentinel or redis+cluster")
    mode, tls, default_port = known
    username, password = _credentials(userinfo)
    hosts = tuple(_parse_host(h, default_port) for h in hostlist.split(",") if h)
    kwargs = _path(path, mode)
    ssl: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "ssl":
            tls = _option(name, value, _flag)
        elif name in _SSL_OPTIONS:
            ssl[name] = _option(name, value, _SSL_OPTIONS[name])
        elif name in _OPTIONS:
            if name in _SENTINEL_ONLY and mode != "sentinel":
                raise ValueError(f"option {name} applies to redis+sentinel:// URLs only")
            kwargs[name] = _option(name, value, _OPTIONS[name])
        else:
            raise ValueError(f"unknown Redis URL option {name!r}")
    return RedisOptions(
        mode=mode, hosts=hosts, username=username, password=password, tls=tls, ssl=ssl, **kwargs
    )


def _split(url: str) -> tuple[str, str | None, str, str, str]:
    """(scheme, userinfo or None, hosts, path, query). The userinfo ends at the last "@"
    before the query, so a password with a raw "/" or "@" in it is still all userinfo
    (and masked in messages)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("expected redis://, rediss://, redis+sentinel:// or redis+cluster://")
    head, _, query = rest.partition("#")[0].partition("?")
    userinfo, at, location = head.rpartition("@")
    hosts, slash, path = location.partition("/")
    return scheme, userinfo if at else None, hosts, slash + path, query


def _option(name: str, value: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(value)
    except (ValueError, KeyError):
        raise ValueError(f"option {name}={value!r} is not {_KINDS[parse]}") from None


def _credentials(userinfo: str | None) -> tuple[str | None, str | None]:
    if userinfo is None:
        return None, None
    user, colon, secret = userinfo.partition(":")
    return unquote(user) or None, unquote(secret) if colon else None


def _path(path: str, mode: Mode) -> dict[str, Any]:
    """The master's name (Sentinel) and the database number a URL's path holds."""
    names = [unquote(p) for p in path.split("/") if p]
    kwargs: dict[str, Any] = {}
    if mode == "sentinel" and names:
        kwargs["service_name"] = names.pop(0)
    if names:
        if len(names) > 1 or not names[0].isdigit():
            raise ValueError(f"unexpected path {path!r} (expected /<database number>)")
        kwargs["db"] = int(names[0])
    return kwargs


def _parse_host(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"host {text!r} opens [ without closing it")
        if port and not port.startswith(":"):
            raise ValueError(f"unexpected {port!r} after [{host}]")
        port = port[1:]
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError(f"empty host in {text!r}")
    if not port:
        return host, default_port
    if not port.isdigit():
        raise ValueError(f"port {port!r} of {host} is not a number")
    return host, int(port)


def redact(url: str) -> str:
    """``url`` with its password and any ``sentinel_password`` option shown as ``***``."""
    try:
        scheme, userinfo, hosts, path, query = _split(url)
    except ValueError:
        return "***"
    if userinfo is not None and ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    netloc = hosts if userinfo is None else f"{userinfo}@{hosts}"
    if query:
        pairs = [p.partition("=") for p in query.split("&")]
        masked = (n + e + ("***" if unquote(n) in _SECRET_OPTIONS else v) for n, e, v in pairs)
        query = "?" + "&".join(masked)
    return f"{scheme}://{netloc}{path}{query}"
