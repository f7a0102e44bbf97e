"""PrivacySettings: where the privacy layer keeps its tables, the tombstone secret, and how
long each kind of personal data is kept (GDPR Art. 5(1)(e), storage limitation).

Read from ``COATCHECK_*`` variables as ``SessionConfig.from_env`` reads its own: a value
that does not parse fails at start-up naming its variable. Retention periods are seconds
here (as every duration of ``SessionConfig``) and days in the environment, where an
operator writes them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from coatcheck.errors import ConfigError

DAY: Final = 24 * 3600.0
MONTH: Final = 365.2425 / 12 * DAY
"""The mean Gregorian month, to turn "13 months" into days."""

PRIVACY_DB_ENV: Final = "COATCHECK_PRIVACY_DB"
TOMBSTONE_SECRET_ENV: Final = "COATCHECK_TOMBSTONE_SECRET"  # noqa: S105 (a variable name)
RETENTION_INTERVAL_ENV: Final = "COATCHECK_RETENTION_INTERVAL"
ACTIVITY_LOG_ENV: Final = "COATCHECK_ACTIVITY_LOG"

MIN_SECRET: Final = 16
"""Characters a tombstone secret needs at least: a short one is a guessable salt."""


@dataclass(frozen=True, slots=True)
class RetentionPeriods:
    """How long each kind of row is kept, in seconds; ``coatcheck purge`` and the service's
    periodic task delete what is older. A holder names the periods its rows fall under
    (``Retaining.retention``)."""

    ended_sessions: float = 30 * DAY
    """Login history (logins, logouts, expiries): what is left of a session once it ended.
    ``COATCHECK_RETENTION_ENDED_SESSIONS`` (days)."""

    security_events: float = 365 * DAY
    """Security events (revocations, suspected theft, client changes, refused logins): 12
    months. ``COATCHECK_RETENTION_SECURITY_EVENTS`` (days)."""

    consent: float = math.ceil(6 * 12 * MONTH / DAY) * DAY
    """Consent rows of erased or long-gone visitors, kept as proof of consent: 6 years
    (2192 days, rounded up: proof must last at least that long).
    ``COATCHECK_RETENTION_CONSENT`` (days)."""

    analytics: float = math.floor(13 * MONTH / DAY) * DAY
    """Analytics rows: 13 months (395 days, rounded down: a maximum).
    ``COATCHECK_RETENTION_ANALYTICS`` (days)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) <= 0:
                raise ConfigError(f"retention period {f.name} must be positive")

    def cutoffs(self, now: float) -> dict[str, float]:
        """For each period, the time before which rows are past it."""
        return {f.name: now - getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True, slots=True)
class PrivacySettings:
    """The privacy layer's settings for one deployment."""

    database_url: str | None = None
    """``COATCHECK_PRIVACY_DB``: the SQL database (``sqlite:///...`` or ``postgresql://...``)
    of the activity log and the tombstones. Unset, the session store's own database when
    it is SQLite or PostgreSQL; a Redis or Memcached deployment must name one."""

    tombstone_secret: str | None = field(default=None, repr=False)
    """``COATCHECK_TOMBSTONE_SECRET``: the key of the hash a tombstone keeps instead of the
    user id. Erasure is refused without it (an unkeyed hash of an id is guessable)."""

    retention: RetentionPeriods = field(default_factory=RetentionPeriods)

    retention_interval: float = 3600.0
    """``COATCHECK_RETENTION_INTERVAL``: seconds between two runs of the service's
    retention task (0: the service runs none; ``coatcheck purge`` still does)."""

    activity_log: bool = True
    """``COATCHECK_ACTIVITY_LOG``: keep the login history and security events (off: none
    is written; what was written is still exported, erased and purged)."""

    def __post_init__(self) -> None:
        secret = self.tombstone_secret
        if secret is not None and len(secret) < MIN_SECRET:
            raise ConfigError(
                f"{TOMBSTONE_SECRET_ENV} must be at least {MIN_SECRET} characters long"
            )
        if self.retention_interval < 0:
            raise ConfigError(f"{RETENTION_INTERVAL_ENV} must not be negative")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> PrivacySettings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get(PRIVACY_DB_ENV, "").strip():
            values["database_url"] = env[PRIVACY_DB_ENV].strip()
        if env.get(TOMBSTONE_SECRET_ENV, ""):
            values["tombstone_secret"] = env[TOMBSTONE_SECRET_ENV]
        periods: dict[str, float] = {}
        for name in RetentionPeriods.names():
            var = f"COATCHECK_RETENTION_{name.upper()}"
            if var in env:
                days = _number(var, env[var])
                if days <= 0:
                    raise ConfigError(f"{var}={env[var]!r} is not a positive number of days")
                periods[name] = days * DAY
        if periods:
            values["retention"] = RetentionPeriods(**periods)
        if RETENTION_INTERVAL_ENV in env:
            values["retention_interval"] = _number(
                RETENTION_INTERVAL_ENV, env[RETENTION_INTERVAL_ENV]
            )
        if ACTIVITY_LOG_ENV in env:
            flag = env[ACTIVITY_LOG_ENV].strip().lower()
            if flag not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ConfigError(f"{ACTIVITY_LOG_ENV}={env[ACTIVITY_LOG_ENV]!r} is not on or off")
            values["activity_log"] = flag in ("1", "true", "yes", "on")
        values.update(overrides)
        return cls(**values)


def _number(var: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{var}={raw!r} is not a number")
    return value
