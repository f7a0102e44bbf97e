"""What the manager answers: the commit result an edge delivers, and the device view.

Plain values with no behaviour beyond their fields, in a module of their own so that both
the server-side procedures (``manager``) and the client-side ones (``clientside``) return
them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from coatcheck.core.record import SessionRecord


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What the edge must tell the client after a commit."""

    token: str | None = None
    """A new token to deliver (cookie or header); None when the client's token stands."""
    clear: bool = False
    """The client must drop its token (logout, or the session ended meanwhile)."""
    max_age: int | None = None
    """Lifetime of a persistent cookie (remember-me); None for a browser-session cookie."""
    ended: bool = False
    """A session ended here (logout): browsers should also drop what they cached for it."""

    @property
    def changes_token(self) -> bool:
        return self.token is not None or self.clear


NO_CHANGE = CommitResult()
CLEARED = CommitResult(clear=True)
"""The client's token opened nothing (revoked, expired, unknown): it must drop it."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as shown in a "your devices" list: nothing in it is a credential."""

    handle: str
    user_id: str | None
    created_at: float
    last_seen_at: float
    expires_at: float
    auth_at: float | None
    remember: bool
    user_agent: str | None
    ip: str | None

    @classmethod
    def from_record(cls, record: SessionRecord) -> SessionInfo:
        return cls(
            handle=record.handle,
            user_id=record.user_id,
            created_at=record.created_at,
            last_seen_at=record.last_seen_at,
            expires_at=record.expires_at,
            auth_at=record.auth_at,
            remember=record.remember,
            user_agent=record.user_agent,
            ip=record.ip,
        )
