"""Lifecycle events and the sinks that receive them.

Events name a session by its public handle, never by token or storage key, so a sink may
write them anywhere (logs, analytics, an audit trail) without becoming a credential leak.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CLIENT_CHANGED",
    "CONSENT",
    "CREATED",
    "EXPIRED",
    "LIMIT_REACHED",
    "LOGIN",
    "LOGOUT",
    "REGENERATED",
    "REJECTED",
    "REVOKED",
    "ROTATED",
    "THEFT_SUSPECTED",
    "WEBSOCKET_REJECTED",
    "EventSink",
    "LoggingSink",
    "MemorySink",
    "SessionEvent",
]

CREATED = "session.created"
LOGIN = "session.login"
LOGOUT = "session.logout"
REGENERATED = "session.regenerated"
EXPIRED = "session.expired"
REVOKED = "session.revoked"
THEFT_SUSPECTED = "session.theft_suspected"
"""A rotated-out token came back after its grace window: the session was revoked."""
ROTATED = "session.rotated"
CLIENT_CHANGED = "session.client_changed"
"""The session came back with another user agent or IP network."""
LIMIT_REACHED = "session.limit_reached"
"""A login was refused: the user has ``max_sessions_per_user`` sessions already."""
REJECTED = "session.rejected"
"""A token was presented that names no live session (unknown, malformed or expired)."""
CONSENT = "session.consent"
"""A session's consent changed (and was stored): ``detail`` holds ``granted``, ``denied``
and ``withdrawn`` (category lists), ``method``, ``revision``, ``consent_at`` (when the
choice was made) and ``reason`` (``choice``, ``recalled``, ``login``)."""
WEBSOCKET_REJECTED = "websocket.rejected"
"""A WebSocket handshake was refused (its Origin is not the app's own)."""


@dataclass(frozen=True, slots=True)
class SessionEvent:
    name: str
    at: float
    handle: str | None = None
    user_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


EventSink = Callable[[SessionEvent], None]
"""Anything callable with an event. Sinks run inline: keep them fast, or queue."""


class LoggingSink:
    """Writes each event as one log line on the ``coatcheck.events`` logger."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("coatcheck.events")
        self.level = level

    def __call__(self, event: SessionEvent) -> None:
        if self.logger.isEnabledFor(self.level):
            detail = " ".join(f"{k}={v}" for k, v in sorted(event.detail.items()))
            self.logger.log(
                self.level,
                "%s handle=%s user=%s %s",
                event.name,
                event.handle,
                event.user_id,
                detail,
            )


class MemorySink:
    """Keeps events in a list (tests, demos, small dashboards)."""

    def __init__(self) -> None:
        self.events: list[SessionEvent] = []

    def __call__(self, event: SessionEvent) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e.name for e in self.events]
