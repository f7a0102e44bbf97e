"""The session's CSRF secret and the masked tokens rendered from it.

Minting lives in core because ``Session.csrf_token()`` renders a token and core may not
import the security layer; the checks (token, ``Origin``, ``Sec-Fetch-Site``) stay in
``coatcheck.security.csrf``, which re-exports these names. Standard library only.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any, Protocol


class HoldsMeta(Protocol):
    """What minting needs of a session: its engine metadata, readable and writable."""

    @property
    def meta(self) -> dict[str, Any]: ...

    def set_meta(self, key: str, value: Any) -> None: ...


SECRET_KEY = "csrf"  # noqa: S105 (a metadata key, not a secret)
"""Engine metadata key (``session.meta``) of the session's CSRF secret."""

SECRET_BYTES = 32
TOKEN_LENGTH = 86
"""base64url (no padding) of the 64 bytes ``pad || pad XOR secret``."""

_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_MASKED_RE = re.compile(r"[A-Za-z0-9_-]{86}")


def _decode(text: str, length: int) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-length % 4))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def stored_secret(session: HoldsMeta) -> bytes | None:
    value = session.meta.get(SECRET_KEY)
    if isinstance(value, str) and _SECRET_RE.fullmatch(value):
        return _decode(value, 43)
    return None


def mask(secret: bytes) -> str:
    """A token for ``secret``: a fresh one-time pad, then the secret XORed with it."""
    pad = secrets.token_bytes(len(secret))
    return _encode(pad + bytes(a ^ b for a, b in zip(pad, secret, strict=True)))


def unmask(token: str) -> bytes | None:
    """The secret inside a token, or None when ``token`` is not shaped like one."""
    if len(token) != TOKEN_LENGTH or not _MASKED_RE.fullmatch(token):
        return None
    raw = _decode(token, TOKEN_LENGTH)
    pad, masked = raw[:SECRET_BYTES], raw[SECRET_BYTES:]
    return bytes(a ^ b for a, b in zip(pad, masked, strict=True))


def csrf_token(session: HoldsMeta) -> str:
    """A token for a form or a header, different at every call; all of them verify until
    the secret changes (at login) or the session ends.

    The first call of a session creates its secret, which the next commit stores: that
    is why rendering a form with a token starts a session for an anonymous visitor.
    """
    secret = stored_secret(session)
    if secret is None:
        secret = secrets.token_bytes(SECRET_BYTES)
        session.set_meta(SECRET_KEY, _encode(secret))
    return mask(secret)
