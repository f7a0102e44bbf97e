"""Sealing bytes into a cookie value and back: AES-256-GCM under a ring of keys.

This module knows nothing about sessions; ``stores/cookie.py`` decides what goes inside.
It needs the optional ``cryptography`` package (``pip install coatcheck[cookie]``), which is
why nothing in the core imports it.

Wire format, then base64url without padding::

    version (1 byte) | kid length (1) | kid (ASCII) | random (24) | ciphertext + GCM tag (16)

- The **key id** names the ring key that sealed the value, so unsealing picks that key at
  once instead of trying each one, and a value sealed under a retired key is told apart
  (``unknown_key``) from a forged one (``invalid``): an operator who retires a key too early
  sees it in the rejection events.
- The **header** (version and key id) is the GCM associated data: changing either fails
  authentication like any other tampering.
- **One subkey per value**: AES-GCM with random 96-bit nonces is only safe for about 2**32
  messages per key (NIST SP 800-38D), and a busy site re-seals a cookie on every write and
  every touch, which can reach that within weeks. Each value is therefore encrypted under
  ``HMAC-SHA256(ring key, CONTEXT | random[:12])`` with ``random[12:]`` as the nonce: 192
  random bits per value and no practical limit per ring key (the shape of XAES-256-GCM, with
  HMAC as the key-derivation PRF). It costs a few microseconds per seal.
- **Canonical encoding**: a value is accepted only in the exact base64url spelling this
  module produces, so no two distinct cookie strings ever open the same payload.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from coatcheck.errors import ConfigError

__all__ = [
    "CONTEXT",
    "DATA_CONTEXT",
    "ENV_KEYS",
    "KEY_BYTES",
    "MAX_VALUE_LENGTH",
    "RANDOM_BYTES",
    "TAG_BYTES",
    "VERSION",
    "Key",
    "KeyRing",
    "UnsealError",
    "derived_kid",
    "key_id",
    "keys_from_env",
    "new_key",
    "parse_keys",
    "to_key",
]

from coatcheck.errors import UnsealError

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "coatcheck's cookie store needs the 'cryptography' package: pip install 'coatcheck[cookie]'"
    ) from exc

VERSION = 1
KEY_BYTES = 32
"""AES-256: ring keys are exactly 32 random bytes."""
RANDOM_BYTES = 24
TAG_BYTES = 16
MAX_VALUE_LENGTH = 4096
"""Longer values are rejected before any decoding: no browser stores a longer cookie."""
CONTEXT = b"coatcheck.seal.v1\x00"
"""Domain separation for subkey derivation (cookies)."""
DATA_CONTEXT = b"coatcheck.data.v1\x00"
"""Domain separation for session data sealed at rest in a server store."""
ENV_KEYS = "COATCHECK_COOKIE_KEYS"

_B64 = re.compile(r"[A-Za-z0-9_-]+")
_KID = re.compile(r"[A-Za-z0-9._-]{1,32}")
_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_MIN_RAW = 2 + 1 + RANDOM_BYTES + TAG_BYTES


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_key() -> str:
    """A fresh ring key, base64url-encoded: ``python -c 'from coatcheck.sealing import
    new_key; print(new_key())'``."""
    return secrets.token_urlsafe(KEY_BYTES)


def derived_kid(secret: bytes) -> str:
    """Default key id: a short fingerprint, so operators need not name their keys.

    Six characters (32 bits of SHA-256) tell the keys of one ring apart; a collision within
    a ring is refused at start-up, and one with a foreign key only fails authentication.
    """
    return _b64encode(hashlib.sha256(b"coatcheck.kid\x00" + secret).digest()[:4])


@dataclass(frozen=True, slots=True)
class Key:
    """One ring key. ``secret`` never appears in a repr, a log line or an error message."""

    kid: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ConfigError(
                f"cookie key {self.kid!r} is {len(self.secret)} bytes; AES-256 needs {KEY_BYTES}"
            )
        if not _KID.fullmatch(self.kid):
            raise ConfigError(
                f"cookie key id {self.kid!r} must be 1-32 characters of A-Z a-z 0-9 . _ -"
            )


KeySpec = Key | bytes | str | tuple[str, "bytes | str"]
"""A ring entry: a Key; raw 32 bytes; base64url text, optionally ``"kid:key"``; or a
``(kid, key)`` pair."""


def _decode_key_text(text: str, where: str) -> bytes:
    text = text.strip()
    if not _KEY_TEXT.fullmatch(text):
        raise ConfigError(f"{where} is not base64url text")
    secret = base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    if len(secret) != KEY_BYTES:
        # Never echo the key itself: the message may end up in a log.
        raise ConfigError(f"{where} decodes to {len(secret)} bytes; AES-256 needs {KEY_BYTES}")
    return secret


def to_key(spec: KeySpec, where: str = "cookie key") -> Key:
    """Normalise one ring entry (see ``KeySpec``)."""
    if isinstance(spec, Key):
        return spec
    if isinstance(spec, tuple):
        kid, material = spec
        secret = material if isinstance(material, bytes) else _decode_key_text(material, where)
        return Key(kid, secret)
    if isinstance(spec, bytes):
        return Key(derived_kid(spec), spec)
    kid, sep, text = spec.strip().rpartition(":")
    secret = _decode_key_text(text, where)
    return Key(kid if sep else derived_kid(secret), secret)


def parse_keys(text: str, source: str = ENV_KEYS) -> list[Key]:
    """Keys from ``"key1,kid2:key2"`` (the ``COATCHECK_COOKIE_KEYS`` format), primary first."""
    parts = [p for p in (part.strip() for part in text.split(",")) if p]
    return [to_key(p, f"{source} entry {i}") for i, p in enumerate(parts, 1)]


def keys_from_env(environ: Mapping[str, str] | None = None, name: str = ENV_KEYS) -> list[Key]:
    """The ring in the environment variable ``name`` (``COATCHECK_COOKIE_KEYS`` unless told,
    ``COATCHECK_DATA_KEYS`` for data at rest), or ConfigError when it is unset."""
    env = os.environ if environ is None else environ
    text = env.get(name, "")
    if not text.strip():
        raise ConfigError(
            f"{name} is not set: give one or more base64url 32-byte keys, comma-separated, "
            "primary first (make one with coatcheck.sealing.new_key())"
        )
    return parse_keys(text, name)


def key_id(value: str) -> str | None:
    """The key id in a sealed value's header, without opening it (for operators and tests:
    which key sealed this cookie?). None when the value is not shaped like a sealed one."""
    try:
        raw = _decode(value)
    except UnsealError:
        return None
    return raw[2 : 2 + raw[1]].decode("ascii", "replace")


def _decode(value: str, max_length: int = MAX_VALUE_LENGTH) -> bytes:
    n = len(value)
    if n > max_length or n % 4 == 1 or not _B64.fullmatch(value):
        raise UnsealError("malformed")
    raw = base64.urlsafe_b64decode(value + "=" * (-n % 4))
    if len(raw) < _MIN_RAW or raw[0] != VERSION or _b64encode(raw) != value:
        raise UnsealError("malformed")
    return raw


class KeyRing:
    """Keys that open sealed values; the first (primary) seals new ones.

    Rotation, without logging anyone out: (1) add the new key *second* and deploy everywhere,
    so every node can read what any node will write; (2) move it *first* (primary) and
    deploy, so new writes use it while the old key still reads; (3) remove the old key once
    the longest session lifetime (``remember_timeout``) has passed since step 2, or at once
    if it leaked (which ends the sessions it sealed). Every re-seal (a write, a touch) moves
    a session to the primary key on its own.
    """

    __slots__ = ("_by_kid", "context", "keys", "primary")

    def __init__(self, keys: Iterable[KeySpec], *, context: bytes = CONTEXT) -> None:
        """``context`` separates the uses of one key: a cookie sealed under a key never
        opens as a stored value sealed under the same key (``DATA_CONTEXT``), and back."""
        self.context = context
        ring = [to_key(k, f"cookie key {i}") for i, k in enumerate(keys, 1)]
        if not ring:
            raise ConfigError("a cookie key ring needs at least one key")
        by_kid: dict[bytes, Key] = {}
        secrets_seen: set[bytes] = set()
        for key in ring:
            kid = key.kid.encode("ascii")
            if kid in by_kid:
                raise ConfigError(f"two cookie keys share the key id {key.kid!r}")
            if key.secret in secrets_seen:
                raise ConfigError(f"cookie key {key.kid!r} appears twice in the ring")
            by_kid[kid] = key
            secrets_seen.add(key.secret)
        self.keys: tuple[Key, ...] = tuple(ring)
        self.primary = ring[0]
        self._by_kid = by_kid

    def __repr__(self) -> str:
        return f"KeyRing(kids={[k.kid for k in self.keys]!r})"

    def seal(self, plaintext: bytes, ad: bytes = b"") -> str:
        """``plaintext`` sealed under the primary key. ``ad`` (associated data) is
        authenticated but not stored: the value opens only with the same ``ad``."""
        key = self.primary
        kid = key.kid.encode("ascii")
        header = bytes((VERSION, len(kid))) + kid
        rand = os.urandom(RANDOM_BYTES)
        subkey = hmac.digest(key.secret, self.context + rand[:12], "sha256")
        sealed = AESGCM(subkey).encrypt(rand[12:], plaintext, header + ad)
        return _b64encode(header + rand + sealed)

    def unseal(self, value: str, ad: bytes = b"", *, max_length: int = MAX_VALUE_LENGTH) -> bytes:
        """The plaintext sealed in ``value`` with ``ad``; UnsealError (never anything else)
        otherwise. ``max_length`` bounds the text before any decoding (a cookie is never
        longer than ``MAX_VALUE_LENGTH``; a stored value may be)."""
        raw = _decode(value, max_length)
        end = 2 + raw[1]
        key = self._by_kid.get(raw[2:end])
        if key is None:
            raise UnsealError("unknown_key")
        rand = raw[end : end + RANDOM_BYTES]
        sealed = raw[end + RANDOM_BYTES :]
        if len(sealed) < TAG_BYTES:
            raise UnsealError("malformed")
        subkey = hmac.digest(key.secret, self.context + rand[:12], "sha256")
        try:
            return AESGCM(subkey).decrypt(rand[12:], sealed, raw[:end] + ad)
        except InvalidTag:
            raise UnsealError("invalid") from None
