"""Tombstones: what an erasure keeps, so that a re-import of the erased user can be refused.

A tombstone holds no user id: only a keyed hash of it (HMAC-SHA256 under the operator's
``COATCHECK_TOMBSTONE_SECRET``) and the date of the erasure. Whoever holds the secret can
ask whether a given id was erased (``is_erased``), which is the tombstone's purpose; nobody
can list whom it names. An unkeyed hash of a user id (often an e-mail address) would be
reversed by guessing, so erasure is refused without a secret.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Final

from coatcheck.core.record import UserId, user_key
from coatcheck.errors import ConfigError
from coatcheck.privacy.database import Cursor, Database
from coatcheck.privacy.settings import MIN_SECRET, TOMBSTONE_SECRET_ENV

DOMAIN: Final = b"coatcheck.tombstone\x00"
"""Prefixed to every hashed id, so the secret hashes nothing else to the same value."""


def erasure_day(at: float) -> str:
    """The UTC date of ``at``, as a tombstone keeps it (a day, not the instant)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


class Tombstones:
    """The erased users' tombstones, in ``database`` (table ``<prefix>tombstones``)."""

    def __init__(self, database: Database, secret: str | None) -> None:
        self.database = database
        self.secret = secret
        self.table = database.table("tombstones")

    def subject(self, user_id: UserId) -> str:
        """The keyed hash a tombstone files ``user_id`` under."""
        if not self.secret or len(self.secret) < MIN_SECRET:
            raise ConfigError(
                f"erasure keeps a keyed hash of the user id: set {TOMBSTONE_SECRET_ENV} "
                f"(at least {MIN_SECRET} characters, kept apart from the database)"
            )
        message = DOMAIN + user_key(user_id).encode("utf-8", "surrogatepass")
        return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()

    def _ensure(self) -> None:
        self.database.ensure(
            "tombstones",
            [
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                "subject TEXT PRIMARY KEY, erased_on TEXT NOT NULL)"
            ],
        )

    def bury(self, user_id: UserId, at: float) -> str:
        """Record that ``user_id`` was erased at ``at``; returns the day kept."""
        subject, day = self.subject(user_id), erasure_day(at)
        self._ensure()

        def write(cur: Cursor) -> None:
            cur.execute(f"DELETE FROM {self.table} WHERE subject = ?", (subject,))
            cur.execute(
                f"INSERT INTO {self.table} (subject, erased_on) VALUES (?, ?)", (subject, day)
            )

        self.database.run(write)
        return day

    def erased_on(self, user_id: UserId) -> str | None:
        """The day ``user_id`` was erased, or None."""
        subject = self.subject(user_id)
        self._ensure()

        def read(cur: Cursor) -> str | None:
            cur.execute(f"SELECT erased_on FROM {self.table} WHERE subject = ?", (subject,))
            row = cur.fetchone()
            return str(row[0]) if row is not None else None

        return self.database.run(read)

    def is_erased(self, user_id: UserId) -> bool:
        """Was ``user_id`` erased? (Refuse a re-import of their data when so.)"""
        return self.erased_on(user_id) is not None
