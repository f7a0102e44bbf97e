"""SessionConfig: every tunable of the engine, secure by default.

Anything weaker than the defaults is possible only through a setting whose name says so,
and combinations a browser would silently ignore (a ``__Host-`` cookie without Secure, say)
are refused here, at start-up, rather than discovered in production.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from coatcheck.core.origins import normalize_origin
from coatcheck.errors import ConfigError

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "SessionConfig",
]

SameSite = Literal["lax", "strict", "none"]
SessionLimitAction = Literal["evict_oldest", "deny"]
ClientChangeAction = Literal["log", "reauthenticate", "end"]

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Timeouts (seconds), cookie attributes and transport of a SessionManager."""

    idle_timeout: float = 30 * MINUTE
    """A session unused this long ends (OWASP: 15-30 min for most applications)."""

    absolute_timeout: float = 12 * HOUR
    """A session ends this long after it was created or last logged in, however busy."""

    remember_timeout: float = 30 * DAY
    """Lifetime of a remember-me login: absolute, no idle limit, persistent cookie."""

    touch_interval: float | None = None
    """How often read-only traffic may extend the idle deadline (a store write).

    None means a tenth of ``idle_timeout``: the deadline is at most 10% early, and a busy
    read-only client costs one write per three minutes instead of one per request.
    """

    cookie_name: str = "__Host-session"
    """``__Host-`` makes the browser refuse the cookie unless Secure, Path=/ and no Domain,
    so a sibling subdomain cannot plant or overwrite it."""

    secure: bool = True
    http_only: bool = True
    same_site: SameSite = "lax"
    path: str = "/"
    domain: str | None = None

    allow_bearer: bool = True
    """Accept ``Authorization: Bearer <token>`` from API clients that keep no cookies."""

    token_header: str = "X-Session-Token"  # noqa: S105 (a header name)
    """Response header that carries a new token to bearer clients (never to cookie clients)."""

    record_client: bool = True
    """Keep the user agent and truncated IP of each session for the "your devices" list."""

    purge_batch_size: int = 1000
    """Rows deleted per transaction by purge_expired: small enough not to block readers."""

    rotation_interval: float | None = None
    """Issue a new token for a live session this often (None: only at login, logout and
    ``regenerate()``, which always rotate). Shortens the life of a token copied in transit."""

    rotation_grace: float = 30.0
    """After a periodic rotation the old token still works this long, so concurrent
    requests of the same client do not lose their session. Presented later, it is taken as
    stolen: the whole session is revoked and ``session.theft_suspected`` is emitted."""

    max_data_bytes: int = 64 * 1024
    """Largest JSON size of one session's data: a write over it fails, naming the size, so
    no visitor can fill the store."""

    max_sessions_per_user: int | None = None
    """Concurrent sessions one user may hold (None: unlimited)."""

    session_limit_action: SessionLimitAction = "evict_oldest"
    """At the limit, a new login ends the user's oldest session ("evict_oldest") or is
    refused ("deny", 403 at the edge)."""

    client_change_action: ClientChangeAction = "log"
    """When a session comes back with another user agent or IP network (/24, /48):
    "log" emits ``session.client_changed``; "reauthenticate" also drops its authentication
    time so ``require_recent_auth`` demands a new login; "end" also revokes it."""

    unknown_token_limit: int | None = 30
    """Unknown or malformed tokens one client (IP) may present per ``unknown_token_window``
    before it gets 429 (None: no limit). Counted in memory, bounded in size."""

    unknown_token_window: float = 60.0

    trusted_proxies: tuple[str, ...] = ()
    """Addresses or CIDRs (``"127.0.0.1"``, ``"10.0.0.0/8"``) of the reverse proxies in
    front of the app. Only when the direct peer is one of them does ``X-Forwarded-For``
    name the client (the nearest hop that is not a trusted proxy: what the throttle counts
    against and the devices list shows) and ``X-Forwarded-Proto`` its scheme (the CSRF
    check's own origin). Empty: the peer is the client, and those headers are ignored."""

    clear_site_data: bool = True
    """Logout responses carry ``Clear-Site-Data: "cache", "cookies", "storage"`` so the
    browser also drops what it kept of the session (ASVS 5.0 14.3.1). Note "cookies" covers
    every cookie of the site's registrable domain."""

    csrf: bool = True
    """Check unsafe requests (POST, PUT, PATCH, DELETE, ...) in every coatcheck middleware:
    ``Sec-Fetch-Site`` and ``Origin`` first, then a token from ``session.csrf_token()``.
    ``False`` is the named opt-out for apps that protect themselves otherwise."""

    trusted_origins: tuple[str, ...] = ()
    """Other origins (``https://app.example.com``) allowed to send unsafe requests: a
    front-end served from another host. The request's own origin (its scheme and Host) is
    always allowed; behind a TLS-terminating proxy that hides the https scheme, list the
    public origin here or let the server trust the proxy's headers."""

    csrf_header: str = "X-CSRF-Token"
    """Request header that carries the CSRF token (JavaScript clients, large uploads)."""

    csrf_field: str = "csrf_token"
    """Form field that carries the CSRF token (urlencoded and multipart forms)."""

    lock_sessions: bool = False
    """Run the requests of one session one at a time, as PHP and ASP.NET do: each request
    that brings a token takes the session's lock before its load and frees it after its
    commit (``coatcheck.engine.locking``). Costs two store round trips per request (more
    while waiting); needs a ``Lockable`` store. Off: only the routes marked locked
    (``locked=`` paths, ``lock_session`` decorators) take it."""

    lock_timeout: float = 10.0
    """How long a request waits for its session's lock (seconds) before it is refused
    with 409 Conflict and ``Retry-After``; 0 tries once."""

    lock_lease: float = 30.0
    """How long a lock lasts unless released (seconds): a worker that crashed holding it
    locks its session this long at most. Longer than the slowest locked request."""
    consent_categories: tuple[str, ...] = ()
    """The application's own consent categories, beside ``necessary``, ``functional``,
    ``analytics`` and ``marketing`` (lower-case names of letters, digits, ``_`` and ``-``).
    Like the last three they are off until granted."""

    consent_revision: int = 1
    """The revision of the consent policy the visitor is asked about. Raising it asks
    again: ``session.consent.needs_prompt`` is True for a choice made under an older one."""

    ip_truncation: str = "24/48"
    """How much of a client's address is kept: the IPv4 and the IPv6 prefix lengths, as
    ``"<v4>/<v6>"`` (``"24/48"``: the last octet of IPv4, the last 80 bits of IPv6 zeroed).
    ``"none"`` is the named opt-out that keeps the whole address."""

    user_agent_key: str | None = field(default=None, repr=False)
    """A secret (at least 16 characters) keying the hash of the full user agent that the
    client-change check compares. Unset: no hash is kept and the check compares the
    reduced user agents (browser family and major version, OS family, device class)."""
    analytics_url: str | None = None
    """``COATCHECK_ANALYTICS_URL``: the analytics store (``sqlite:///analytics.db``,
    ``postgresql://...``). Set, every edge over a manager with this config records
    consented page views and lifecycle events there (``coatcheck.analytics``); None (the
    default) records nothing."""

    extra: Mapping[str, Any] = field(default_factory=dict)
    """Settings for extensions, kept here so one config object travels through the app."""

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "absolute_timeout", "remember_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.touch_interval is not None and not (0 <= self.touch_interval <= self.idle_timeout):
            raise ConfigError("touch_interval must be between 0 and idle_timeout")
        if self.same_site not in ("lax", "strict", "none"):
            raise ConfigError(f"same_site must be lax, strict or none, got {self.same_site!r}")
        if self.same_site == "none" and not self.secure:
            raise ConfigError("same_site='none' requires secure=True (browsers drop it otherwise)")
        if self.rotation_interval is not None and self.rotation_interval <= 0:
            raise ConfigError("rotation_interval must be positive (or None)")
        if self.rotation_grace < 0:
            raise ConfigError("rotation_grace must not be negative")
        if self.max_data_bytes < 1:
            raise ConfigError("max_data_bytes must be positive")
        if self.max_sessions_per_user is not None and self.max_sessions_per_user < 1:
            raise ConfigError("max_sessions_per_user must be at least 1 (or None)")
        if self.session_limit_action not in ("evict_oldest", "deny"):
            raise ConfigError("session_limit_action must be evict_oldest or deny")
        if self.client_change_action not in ("log", "reauthenticate", "end"):
            raise ConfigError("client_change_action must be log, reauthenticate or end")
        if self.unknown_token_limit is not None and self.unknown_token_limit < 1:
            raise ConfigError("unknown_token_limit must be at least 1 (or None)")
        if not isinstance(self.lock_sessions, bool):
            raise ConfigError(f"lock_sessions must be True or False, got {self.lock_sessions!r}")
        if not self.lock_timeout >= 0:
            raise ConfigError(f"lock_timeout must not be negative, got {self.lock_timeout!r}")
        if not self.lock_lease > 0:
            raise ConfigError(f"lock_lease must be positive, got {self.lock_lease!r}")
        if self.purge_batch_size < 1:
            raise ConfigError("purge_batch_size must be at least 1")
        _check_privacy(self)
        object.__setattr__(self, "trusted_origins", tuple(self.trusted_origins))
        for origin in self.trusted_origins:
            if not isinstance(origin, str) or normalize_origin(origin) is None:
                raise ConfigError(
                    f"trusted_origins: {origin!r} is not an origin (scheme://host[:port])"
                )
        object.__setattr__(self, "trusted_proxies", tuple(self.trusted_proxies))
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(str(proxy).strip(), strict=False)
            except ValueError:
                raise ConfigError(
                    f"trusted_proxies: {proxy!r} is not an IP address or network (CIDR)"
                ) from None
        if not self.csrf_header or any(c in self.csrf_header for c in ' :;,"\t\r\n'):
            raise ConfigError(f"invalid csrf_header {self.csrf_header!r}")
        if not self.cookie_name or any(c in self.cookie_name for c in ' ;,="\t\r\n'):
            raise ConfigError(f"invalid cookie_name {self.cookie_name!r}")
        lowered = self.cookie_name.lower()
        if lowered.startswith("__host-"):
            if not self.secure or self.path != "/" or self.domain is not None:
                raise ConfigError(
                    "a __Host- cookie needs secure=True, path='/' and no domain; to relax "
                    "these, also choose a cookie_name without the __Host- prefix"
                )
        elif lowered.startswith("__secure-") and not self.secure:
            raise ConfigError("a __Secure- cookie needs secure=True")

    @property
    def ip_prefixes(self) -> tuple[int, int] | None:
        """The (IPv4, IPv6) prefix lengths kept of an address; None: the whole address."""
        if self.ip_truncation.strip().lower() == "none":
            return None
        v4, _, v6 = self.ip_truncation.partition("/")
        return int(v4), int(v6)

    @property
    def effective_touch_interval(self) -> float:
        """The touch interval in force (resolves the None default)."""
        if self.touch_interval is None:
            return self.idle_timeout / 10
        return self.touch_interval

    def replace(self, **changes: Any) -> SessionConfig:
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> SessionConfig:
        """Read ``COATCHECK_<SETTING>`` variables (e.g. ``COATCHECK_IDLE_TIMEOUT=900``).

        An unparsable or invalid value raises ConfigError naming the variable, so a typo in
        a value fails loudly instead of silently keeping a default. (A misspelled variable
        *name* is simply not read: other ``COATCHECK_*`` variables exist, such as
        ``COATCHECK_STORE``, so unknown names cannot be told from them.)
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            var = f"COATCHECK_{f.name.upper()}"
            if var not in env:
                continue
            values[f.name] = _parse(var, env[var], f.type)
        values.update(overrides)
        return cls(**values)


_CATEGORY = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_STANDARD_CATEGORIES = ("necessary", "functional", "analytics", "marketing")


def _check_privacy(config: SessionConfig) -> None:
    """The consent and minimisation settings, refused at start-up when they cannot work."""
    categories = tuple(config.consent_categories)
    object.__setattr__(config, "consent_categories", categories)
    for name in categories:
        if not isinstance(name, str) or not _CATEGORY.fullmatch(name):
            raise ConfigError(
                f"consent_categories: {name!r} is not a category name "
                "(lower-case letters, digits, '_' and '-', at most 40)"
            )
        if name in _STANDARD_CATEGORIES:
            raise ConfigError(f"consent_categories: {name!r} is a standard category already")
    if len(set(categories)) != len(categories):
        raise ConfigError("consent_categories: a category is named twice")
    if isinstance(config.consent_revision, bool) or not isinstance(config.consent_revision, int):
        raise ConfigError("consent_revision must be an integer")
    if config.consent_revision < 1:
        raise ConfigError("consent_revision must be at least 1")
    text = str(config.ip_truncation).strip().lower()
    if text != "none":
        v4, slash, v6 = text.partition("/")
        if not (slash and v4.isdigit() and v6.isdigit()):
            raise ConfigError(
                f"ip_truncation must be '<v4 prefix>/<v6 prefix>' (as '24/48') or 'none', "
                f"got {config.ip_truncation!r}"
            )
        if not (0 <= int(v4) <= 32 and 0 <= int(v6) <= 128):
            raise ConfigError("ip_truncation: prefixes are 0-32 (IPv4) and 0-128 (IPv6)")
    key = config.user_agent_key
    if key is not None and len(key) < 16:
        raise ConfigError("user_agent_key must be at least 16 characters (a secret)")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse(var: str, raw: str, type_: Any) -> Any:
    text = raw.strip()
    kind = str(type_)
    try:
        if kind == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if kind == "float":
            return float(text)
        if kind == "float | None":
            return None if text.lower() in ("", "none") else float(text)
        if kind == "int":
            return int(text)
        if kind == "int | None":
            return None if text.lower() in ("", "none") else int(text)
        if kind == "str | None":
            return text or None
        if kind == "tuple[str, ...]":
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return text
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a valid {kind}") from None
