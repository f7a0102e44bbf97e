"""Session tokens: minting, validation and the storage key derived from them.

A token is the only credential a client holds. It carries 256 bits from the operating
system's CSPRNG and is never stored: stores see ``storage_key(token)``, the SHA-256 of the
token, so a leaked database or backup holds nothing a client could present. Handles are a
separate random identifier that is safe to show in UIs and logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_BYTES = 32
"""Entropy of a token: 256 bits, well above OWASP's 64-bit floor."""

TOKEN_LENGTH = 43
"""Length of ``secrets.token_urlsafe(32)``: base64url without padding."""

HANDLE_BYTES = 12

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    """Return a fresh 256-bit token, base64url-encoded without padding."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_handle() -> str:
    """Return a fresh public handle (96 random bits): names a session in UIs, logs, events."""
    return secrets.token_urlsafe(HANDLE_BYTES)


def is_well_formed(token: str) -> bool:
    """True when ``token`` has the exact shape of a minted token.

    Checked before hashing so that oversized or garbage values cost nothing and never reach
    a store; the length check comes first so a megabyte-long header is rejected in O(1).
    """
    return len(token) == TOKEN_LENGTH and _TOKEN_RE.fullmatch(token) is not None


def storage_key(token: str) -> str:
    """The key a store files a session under: hex SHA-256 of the token.

    A plain (unkeyed) hash is enough because the token has 256 bits of entropy: there is
    nothing to brute-force, and every node of a cluster derives the same key without
    sharing a secret.
    """
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def superseded_key(old_key: str) -> str:
    """Where a login or ``regenerate()`` that moved a record away from ``old_key`` leaves
    its short-lived "superseded" marker (``policy.superseded_marker``).

    Derived from the old storage key (not from a token), so only the engine can name it:
    no token hashes to it short of a SHA-256 collision, since the hashed text
    (``superseded:`` and 64 hex digits) is not the shape of a token.
    """
    return hashlib.sha256(b"superseded:" + old_key.encode("ascii")).hexdigest()


def checked_storage_key(token: str) -> str | None:
    """``storage_key(token)`` when ``is_well_formed(token)``, else None: the two checks a
    load makes on every request, in one call."""
    return storage_key(token) if is_well_formed(token) else None


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets without leaking where they differ through timing."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)
