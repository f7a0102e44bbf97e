"""The per-user session limit (``max_sessions_per_user``) as steps of the commit: deny a
login over it, or after a login end the user's oldest sessions beyond it.

A mixin of ``SessionManager`` (apart so the manager stays one screenful of orchestration);
it reads only ``config`` and ``emit`` of it and yields store operations like every step.
"""

from __future__ import annotations

from coatcheck.core import events as ev
from coatcheck.core.session import Session
from coatcheck.core.steps import Steps
from coatcheck.engine.accounts import UserSessions
from coatcheck.engine.operations import DeleteHandle, ListUser
from coatcheck.errors import SessionLimitExceeded


class SessionLimits(UserSessions):
    """Steps of ``max_sessions_per_user``, for ``SessionManager``."""

    def _limit_denies(self, session: Session) -> bool:
        return (
            session.intents.login
            and session.user_id is not None
            and self.config.max_sessions_per_user is not None
            and self.config.session_limit_action == "deny"
        )

    def _deny_over_limit(self, session: Session, now: float) -> Steps[None]:
        """Refuse a login that would exceed ``max_sessions_per_user`` (deny mode)."""
        user_id = session.user_id
        assert user_id is not None and self.config.max_sessions_per_user is not None
        live = yield ListUser(user_id, now)
        others = [r for r in live if r.handle != session.handle]
        if len(others) >= self.config.max_sessions_per_user:
            self.emit(ev.LIMIT_REACHED, user_id=user_id, active=len(others))
            raise SessionLimitExceeded(
                f"user already has {len(others)} active sessions "
                f"(max_sessions_per_user={self.config.max_sessions_per_user})"
            )

    def _evict_over_limit(
        self, user_id: str, keep: str | None, limit: int, now: float
    ) -> Steps[None]:
        """After a login, end the user's oldest sessions beyond ``limit`` (never the new
        one)."""
        live = yield ListUser(user_id, now)
        excess = len(live) - limit
        for victim in [r for r in live if r.handle != keep][: max(0, excess)]:
            yield DeleteHandle(victim.handle)
            self.emit(ev.REVOKED, handle=victim.handle, user_id=user_id, reason="session_limit")
