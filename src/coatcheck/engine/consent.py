"""What the manager does about consent and the client around a load and a commit: the
rules of what is kept of a client, the GPC signal honoured at load, the user's recorded
choice recalled at login, and the ``session.consent`` events announced after a commit.
The rules themselves are ``coatcheck.core.consent``'s and ``coatcheck.core.client``'s.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Protocol

from coatcheck.core import events as ev
from coatcheck.core.client import ClientInfo, ClientRules
from coatcheck.core.config import SessionConfig
from coatcheck.core.consent import ConsentPolicy, ConsentState
from coatcheck.core.session import Session
from coatcheck.engine.results import CommitResult

if TYPE_CHECKING:
    from coatcheck.engine.accounts import UserSessions

__all__ = ["ConsentRecall", "announce", "client_rules", "logged_in", "ready"]


class ConsentRecall(Protocol):
    """Where a logged-in user's latest consent is recorded (the consent ledger of
    ``coatcheck.privacy.ledger``): asked at each login, so a choice made on one device
    applies on the next."""

    def latest_consent(self, user_id: str) -> ConsentState | None: ...

    async def latest_consent_async(self, user_id: str) -> ConsentState | None: ...


def client_rules(config: SessionConfig) -> ClientRules:
    """What a manager keeps of a client under ``config`` (the coarse user agent reduction
    of the standard library; ``coatcheck.privacy.minimise.install`` puts ua-parser's in its
    place). The hash key is derived from ``user_agent_key`` with a label of its own, so the
    secret is never used as is."""
    key = config.user_agent_key
    hash_key = hashlib.sha256(b"coatcheck user agent\0" + key.encode()).digest() if key else None
    return ClientRules(ip_prefixes=config.ip_prefixes, hash_key=hash_key)


def ready(policy: ConsentPolicy, session: Session, client: ClientInfo | None) -> Session:
    """The loaded session, with the manager's consent ``policy``, and a GPC signal of the
    request honoured (a refusal of analytics and marketing, once per session)."""
    session.consent_policy = policy
    if client is not None and client.gpc and not session.committed:
        session.consent.honour_gpc()
    return session


def logged_in(session: Session, recalled: ConsentState | None) -> None:
    """A login is being committed: the user's recorded consent applies when this device
    has none or an older one, and the device's choice is announced as theirs."""
    consent = session.consent
    if recalled is not None:
        consent.adopt(recalled)
    consent.logged_in()


def announce(manager: UserSessions, session: Session, result: CommitResult) -> CommitResult:
    """After a commit that stored the session: one ``session.consent`` event per consent
    change of the request (none when nothing was stored)."""
    changes = session.consent_changes
    if changes and not result.clear and session.handle is not None:
        for change in changes:
            manager.emit(
                ev.CONSENT, handle=session.handle, user_id=session.user_id, **change.detail()
            )
    return result
