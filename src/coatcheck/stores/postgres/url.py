"""``postgresql://`` store URLs: coatcheck's own query options taken out, libpq's left in.

A URL is configuration: anything wrong with it (an option that does not parse, a table
name, an option libpq does not know) is a StoreURLError naming the URL with its password
masked, raised when the app starts rather than as a 503 on the first request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from coatcheck.errors import StoreURLError
from coatcheck.stores.postgres.store import PostgresStore

URL_OPTIONS = frozenset(
    {
        "table",
        "pool_min",
        "pool_max",
        "pool_timeout",
        "statement_timeout",
        "reconnect_timeout",
        "prepare_threshold",
        "migrate",
    }
)
"""Query options that are coatcheck's; every other one is passed on to libpq."""

_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS.update({"0": False, "false": False, "no": False, "off": False})


def from_url(url: str) -> PostgresStore:
    """``postgresql://user:pass@host:5432/db?table=...&pool_max=20``.

    coatcheck's own query options: ``table``, ``pool_min``, ``pool_max``, ``pool_timeout``,
    ``statement_timeout`` and ``reconnect_timeout`` (seconds), ``prepare_threshold`` (an
    int, or ``none``), ``migrate`` (``true``/``false``). ``connect_timeout`` and every
    other option are libpq's (``sslmode``, ``application_name``, ...).
    """
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    # libpq reads "+" literally (only %-escapes are decoded): so must we.
    for name, value in parse_qsl(parts.query.replace("+", "%2B"), keep_blank_values=True):
        if name in URL_OPTIONS:
            ours[name] = value
        else:
            theirs.append((name, value))
    try:
        kwargs = _store_options(ours, theirs)
    except ValueError as exc:
        raise StoreURLError(f"invalid PostgreSQL store option in {_redact(url)!r}: {exc}") from None
    # ...and a space must not be re-encoded as "+".
    query = urlencode(theirs, quote_via=quote)
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=query))
    try:
        return PostgresStore(conninfo, **kwargs)
    except ValueError as exc:
        raise StoreURLError(f"PostgreSQL store URL {_redact(url)!r}: {exc}") from None


def _store_options(ours: dict[str, str], theirs: list[tuple[str, str]]) -> dict[str, Any]:
    """PostgresStore's keyword arguments from the URL's options (ValueError if one is bad)."""
    kwargs: dict[str, Any] = {}
    if "table" in ours:
        kwargs["table"] = ours["table"]
    if "pool_min" in ours:
        kwargs["min_size"] = int(ours["pool_min"])
    if "pool_max" in ours:
        kwargs["max_size"] = int(ours["pool_max"])
    for name in ("pool_timeout", "statement_timeout", "reconnect_timeout"):
        if name in ours:
            kwargs[name] = float(ours[name])
    if "prepare_threshold" in ours:
        value = ours["prepare_threshold"].strip().lower()
        kwargs["prepare_threshold"] = None if value in ("none", "off", "") else int(value)
    if "migrate" in ours:
        flag = _FLAGS.get(ours["migrate"].strip().lower())
        if flag is None:
            raise ValueError(f"migrate={ours['migrate']!r}")
        kwargs["migrate"] = flag
    connect = [v for k, v in theirs if k == "connect_timeout"]
    if connect:
        kwargs["connect_timeout"] = float(connect[-1])
    if "min_size" in kwargs and "max_size" not in kwargs:
        kwargs["max_size"] = max(kwargs["min_size"], 10)
    if "max_size" in kwargs and "min_size" not in kwargs:
        kwargs["min_size"] = min(1, kwargs["max_size"])
    return kwargs


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
