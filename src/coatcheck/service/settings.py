"""ServiceSettings: what the session service adds to ``SessionConfig``, from ``COATCHECK_*``.

The engine's own settings (timeouts, cookie name, rotation) stay in ``SessionConfig`` and
its ``COATCHECK_<SETTING>`` variables; these are the service's alone. A value that does not
parse fails at start-up naming its variable, as ``SessionConfig.from_env`` does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from coatcheck.errors import ConfigError
from coatcheck.http.paths import prefixes

DEFAULT_STORE: Final = "sqlite:///coatcheck.db"
JWT_MAX_TTL: Final = 15 * 60
"""No JWT lives longer than this (and none outlives its session's deadline)."""
ALGORITHMS: Final = ("EdDSA", "ES256")


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Settings of one service process (every node of a cluster should share them)."""

    store_url: str = DEFAULT_STORE
    """``COATCHECK_STORE``: where sessions, API keys and JWT signing keys live."""

    passive_paths: tuple[str, ...] = ()
    """``COATCHECK_PASSIVE_PATHS`` (comma-separated): forward-auth requests for these paths
    (each with the paths below it) are checked but do not slide the idle deadline."""

    api_key_cache: float = 5.0
    """``COATCHECK_API_KEY_CACHE``: seconds a node may answer from the API keys it read
    last; a revoked key stops working on every node within this time."""

    ready_timeout: float = 2.0
    """``COATCHECK_READY_TIMEOUT``: seconds the store has to answer ``/readyz``."""

    forward_auth_jwt: str | None = None
    """``COATCHECK_FORWARD_AUTH_JWT``: an audience; when set, every forward-auth answer
    carries ``X-Coatcheck-JWT`` for it."""

    jwt_audience: str = "coatcheck"
    """``COATCHECK_JWT_AUDIENCE``: the ``aud`` of a JWT when the caller names none."""

    jwt_ttl: int = 300
    """``COATCHECK_JWT_TTL``: lifetime of a JWT when the caller names none (seconds)."""

    jwt_algorithm: str = "EdDSA"
    """``COATCHECK_JWT_ALGORITHM``: EdDSA (Ed25519) or ES256, for the first signing key."""

    analytics_url: str | None = None
    """``COATCHECK_ANALYTICS_URL``: the analytics store. ``from_env`` (what ``coatcheck
    serve`` reads) defaults it to a SQLite file beside the session store
    (``default_analytics_url``); ``off`` switches analytics off."""

    def __post_init__(self) -> None:
        if self.api_key_cache < 0:
            raise ConfigError("COATCHECK_API_KEY_CACHE must not be negative")
        if self.ready_timeout <= 0:
            raise ConfigError("COATCHECK_READY_TIMEOUT must be positive")
        if not 1 <= self.jwt_ttl <= JWT_MAX_TTL:
            raise ConfigError(f"COATCHECK_JWT_TTL must be between 1 and {JWT_MAX_TTL}")
        if self.jwt_algorithm not in ALGORITHMS:
            raise ConfigError(f"COATCHECK_JWT_ALGORITHM must be one of {', '.join(ALGORITHMS)}")
        for path in self.passive_paths:
            if not path.startswith("/"):
                raise ConfigError(f"COATCHECK_PASSIVE_PATHS: {path!r} does not start with /")
        object.__setattr__(self, "passive_paths", prefixes(self.passive_paths))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ServiceSettings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("COATCHECK_STORE"):
            values["store_url"] = env["COATCHECK_STORE"]
        if "COATCHECK_PASSIVE_PATHS" in env:
            raw = env["COATCHECK_PASSIVE_PATHS"]
            values["passive_paths"] = tuple(p.strip() for p in raw.split(",") if p.strip())
        for name, var, kind in (
            ("api_key_cache", "COATCHECK_API_KEY_CACHE", float),
            ("ready_timeout", "COATCHECK_READY_TIMEOUT", float),
            ("jwt_ttl", "COATCHECK_JWT_TTL", int),
        ):
            if var in env:
                try:
                    values[name] = kind(env[var].strip())
                except ValueError:
                    raise ConfigError(
                        f"{var}={env[var]!r} is not a valid {kind.__name__}"
                    ) from None
        if env.get("COATCHECK_FORWARD_AUTH_JWT", "").strip():
            values["forward_auth_jwt"] = env["COATCHECK_FORWARD_AUTH_JWT"].strip()
        if env.get("COATCHECK_JWT_AUDIENCE", "").strip():
            values["jwt_audience"] = env["COATCHECK_JWT_AUDIENCE"].strip()
        if env.get("COATCHECK_JWT_ALGORITHM", "").strip():
            values["jwt_algorithm"] = env["COATCHECK_JWT_ALGORITHM"].strip()
        values.update(overrides)
        if "analytics_url" not in values:
            raw = env.get("COATCHECK_ANALYTICS_URL", "").strip()
            store = values.get("store_url", DEFAULT_STORE)
            values["analytics_url"] = (
                None if raw.lower() in OFF else raw or default_analytics_url(store)
            )
        return cls(**values)


OFF: Final = ("off", "none", "0", "false")
"""Values of ``COATCHECK_ANALYTICS_URL`` that switch analytics off for the service."""


def default_analytics_url(store_url: str) -> str:
    """A SQLite file beside a SQLite session store (``sessions.db`` ->
    ``sessions-analytics.db``); ``coatcheck-analytics.db`` in the working directory for
    any other store."""
    if store_url.startswith("sqlite:///"):
        path = store_url.removeprefix("sqlite:///").split("?", 1)[0]
        if path and path != ":memory:":
            stem = path[:-3] if path.endswith(".db") else path
            return f"sqlite:///{stem}-analytics.db"
    return "sqlite:///coatcheck-analytics.db"
