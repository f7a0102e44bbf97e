"""The demo's fixed catalogue and its small in-memory directory of accounts.

The catalogue is fixed on purpose: a cart may only hold known product ids, so nothing a
visitor types ever becomes a product name on the page. The two users are printed on the
sign-in page so a newcomer can sign in from two browsers and watch the devices list.

Passwords are kept only as argon2id hashes (argon2-cffi's defaults, the RFC 9106 low-memory
profile): even a demo should not teach comparing plain passwords. Verifying costs tens of
milliseconds of CPU by design, so the routes run it in a worker thread, never on the event
loop. The directory lives in the process: a changed password or e-mail lasts until the
server restarts, which is what a demo wants.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PRODUCTS: dict[str, str] = {
    "coat": "Wool coat",
    "scarf": "Striped scarf",
    "umbrella": "Folding umbrella",
    "hat": "Felt hat",
}
"""Product id -> display name."""

DEMO_USERS: dict[str, str] = {"alice": "alice", "bob": "bob"}
"""Demo users as the sign-in page shows them: username -> starting password."""

MAX_CART_ITEMS = 50
"""A cart is session data: bounded, so a script cannot grow one record without limit."""

MIN_PASSWORD = 8
"""NIST SP 800-63B's floor for a password a person chooses."""

MAX_PASSWORD = 256
"""A ceiling, so a huge form field cannot make one hash cost a second of CPU."""

MAX_EMAIL = 254
"""The longest address SMTP can carry (RFC 5321 path limit)."""


HASHER = PasswordHasher()
"""argon2id with argon2-cffi's default parameters (RFC 9106's second recommendation)."""


@dataclass(slots=True)
class Account:
    password_hash: str
    email: str


class Accounts:
    """The demo's users: username -> argon2id hash and e-mail address, in memory.

    A lock guards the dictionary because password checks run in worker threads.
    """

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.hasher = HASHER
        self._lock = threading.Lock()
        self._accounts = {
            name: Account(self.hasher.hash(password), f"{name}@example.com")
            for name, password in (DEMO_USERS if users is None else users).items()
        }

    def authenticate(self, username: str, password: str) -> str | None:
        """The user id for valid credentials, else None (blocking: call it in a thread)."""
        if len(password) > MAX_PASSWORD:
            return None
        with self._lock:
            account = self._accounts.get(username)
            stored = account.password_hash if account is not None else _decoy()
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return username if account is not None else None

    def set_password(self, username: str, password: str) -> None:
        """Store a new password's hash (blocking: call it in a thread)."""
        new_hash = self.hasher.hash(password)
        with self._lock:
            self._accounts[username].password_hash = new_hash

    def email_of(self, username: str) -> str | None:
        with self._lock:
            account = self._accounts.get(username)
            return account.email if account is not None else None

    def set_email(self, username: str, email: str) -> None:
        with self._lock:
            self._accounts[username].email = email

    def remove(self, username: str) -> None:
        """Forget an erased user: their sign-in is refused until the process restarts
        (when the demo's starting users come back, as changed passwords go)."""
        with self._lock:
            self._accounts.pop(username, None)

    def password_hash_of(self, username: str) -> str:
        """The stored hash (tests read it to see argon2id, never a password)."""
        with self._lock:
            return self._accounts[username].password_hash


@functools.cache
def _decoy() -> str:
    """Checked against when the username is unknown, so an unknown name costs the same
    hash as a known one and the time taken does not tell which usernames exist."""
    return HASHER.hash("not the password of anyone")


def password_problem(new: str, confirm: str) -> str | None:
    """Why a chosen password is refused, in words for the form, or None."""
    if new != confirm:
        return "The two new passwords differ."
    if len(new) < MIN_PASSWORD:
        return f"Choose a password of at least {MIN_PASSWORD} characters."
    if len(new) > MAX_PASSWORD:
        return f"Choose a password of at most {MAX_PASSWORD} characters."
    return None


def email_problem(email: str) -> str | None:
    """Why an e-mail address is refused, or None: one @, something either side, no space.
    (Whether it receives mail is a confirmation message's job, which a demo has none of.)"""
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email):
        return "Enter an e-mail address like name@example.com."
    if len(email) > MAX_EMAIL:
        return f"An e-mail address has at most {MAX_EMAIL} characters."
    return None
