"""One row of the analytics store: a page view, a custom event or a lifecycle event.

One table holds the three kinds so that a visit (page views and custom events of one
session, split after inactivity) is one ordered scan of one index. A row names its session
by the public handle, never by token or storage key, and keeps no IP, query string or user
agent: the browser, OS and device class are all that is left of the client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from coatcheck.core.events import SessionEvent

__all__ = ["EVENT", "LIFECYCLE", "PAGE", "Hit", "from_event"]

PAGE: Final = "page"
EVENT: Final = "event"
LIFECYCLE: Final = "lifecycle"

COLUMNS: Final = (
    "kind",
    "at",
    "session",
    "user_id",
    "name",
    "method",
    "status",
    "duration_ms",
    "previous",
    "browser",
    "os",
    "device",
    "reason",
    "props",
    "visit",
)
"""The columns a write fills, in order (``id`` is the store's; ``visit`` and, for a page
view, ``previous`` are the store's too: it places each row in its visit as it writes)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """``name`` is the route of a page view, or the name of a custom or lifecycle event.
    ``reason`` is a lifecycle event's ``reason`` detail (how a session ended)."""

    kind: str
    at: float
    session: str
    name: str
    user_id: str | None = None
    method: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    previous: str | None = None
    browser: str | None = None
    os: str | None = None
    device: str | None = None
    reason: str | None = None
    props: Mapping[str, Any] = field(default_factory=dict)

    def values(self, previous: str | None, visit: int | None) -> tuple[Any, ...]:
        """The row in ``COLUMNS`` order, ``props`` as JSON text, with the ``previous``
        route and the ``visit`` the store placed it in."""
        props = json.dumps(dict(self.props), separators=(",", ":"), default=str)
        return (
            self.kind,
            self.at,
            self.session,
            self.user_id,
            self.name,
            self.method,
            self.status,
            self.duration_ms,
            previous,
            self.browser,
            self.os,
            self.device,
            self.reason,
            props,
            visit,
        )


_SAFE_DETAIL: Final = ("reason", "changed", "action", "count")
"""Details of a lifecycle event a row keeps (short, and never a credential)."""


def from_event(event: SessionEvent) -> Hit | None:
    """The row for a lifecycle event, or None for one that names no session (a rejected
    token, a refused WebSocket): those say nothing about a visit."""
    if event.handle is None:
        return None
    detail = {k: event.detail[k] for k in _SAFE_DETAIL if k in event.detail}
    reason = detail.get("reason")
    return Hit(
        kind=LIFECYCLE,
        at=event.at,
        session=event.handle,
        name=event.name,
        user_id=event.user_id,
        reason=str(reason) if reason is not None else None,
        props=detail,
    )
