"""Short-lived JWTs for upstream services, signed by a key ring kept in the session store.

A session token is a credential only the service can check; a JWT is one any upstream
service can check alone, with the public keys of ``/.well-known/jwks.json``. Claims:
``sub`` (user), ``sid`` (the session's handle), ``lvl`` (assurance level), ``aud``, ``iat``,
``exp``. No JWT lives longer than ``JWT_MAX_TTL`` nor past its session's deadline.

The ring lives in the reserved record ``jwt-keys`` (see ``reserved``), so every node signs
with the same keys: one entry per key (``k:<kid>``: algorithm, private key as PKCS#8 PEM,
public JWK, and when it was created, starts signing and was retired). A node rereads the
ring at most every ``RING_REFRESH`` seconds to sign, and on every JWKS request to publish.

``rotate`` publishes a new key at once but has it sign only ``RING_REFRESH`` seconds later,
when every node has read it: a verifier that fetches the JWKS from any node then knows every
key a token can carry. The keys it replaces are retired then; a retired key stays published
for ``RETENTION`` seconds, until the last token it signed (up to ``RING_REFRESH`` after the
rotation, living ``JWT_MAX_TTL`` at most) has expired.

The ring's private keys are as secret as the store itself: whoever can read the store can
sign tokens.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from coatcheck.engine.operations import Steps, run_async
from coatcheck.service import reserved
from coatcheck.service.settings import ALGORITHMS, JWT_MAX_TTL
from coatcheck.stores.base import Store

RING_REFRESH: Final = 5.0
RETENTION: Final = RING_REFRESH + JWT_MAX_TTL + 60.0
"""Seconds a retired key stays in the JWKS after the rotation that retired it: the time it
still signs, its last token's lifetime, and a minute for clocks that disagree."""
ENTRY: Final = "k:"


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    private_pem: str
    public_jwk: dict[str, Any]
    created_at: float
    active_at: float
    """When it starts signing (a rotation's new key waits ``RING_REFRESH``)."""
    retired_at: float | None = None
    """When a newer key replaced it (the newer key signs from ``RING_REFRESH`` later)."""

    def entry(self) -> dict[str, Any]:
        return {
            "alg": self.alg,
            "private": self.private_pem,
            "public": self.public_jwk,
            "created_at": self.created_at,
            "active_at": self.active_at,
            "retired_at": self.retired_at,
        }

    def published_at(self, now: float) -> bool:
        """Is the key still in the JWKS at ``now``?"""
        return self.retired_at is None or now < self.retired_at + RETENTION


def generate(alg: str, now: float, active_at: float) -> SigningKey:
    """A fresh key pair for ``alg`` (EdDSA: Ed25519; ES256: P-256)."""
    if alg not in ALGORITHMS:
        raise ValueError(f"unknown JWT algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}")
    kid = secrets.token_urlsafe(12)
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    if alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        public_jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        public_jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_jwk = {**public_jwk, "kid": kid, "alg": alg, "use": "sig"}
    return SigningKey(kid, alg, pem, public_jwk, now, active_at)


def parse(data: dict[str, Any]) -> dict[str, SigningKey]:
    """Every key of the ring's data, by kid; malformed entries are ignored."""
    keys: dict[str, SigningKey] = {}
    for field, entry in data.items():
        if not field.startswith(ENTRY) or not isinstance(entry, dict):
            continue
        try:
            retired = entry.get("retired_at")
            keys[field[len(ENTRY) :]] = SigningKey(
                kid=field[len(ENTRY) :],
                alg=str(entry["alg"]),
                private_pem=str(entry["private"]),
                public_jwk=dict(entry["public"]),
                created_at=float(entry["created_at"]),
                active_at=float(entry["active_at"]),
                retired_at=float(retired) if retired is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            continue
    return keys


def signing_key(keys: dict[str, SigningKey], now: float) -> SigningKey | None:
    """The key that signs at ``now``: the newest one already active."""
    active = [k for k in keys.values() if k.active_at <= now]
    return max(active, key=lambda k: (k.active_at, k.created_at)) if active else None


def published(keys: dict[str, SigningKey], now: float) -> list[SigningKey]:
    """The keys of the JWKS at ``now``, newest first: the signing one, any waiting to sign,
    and the retired ones whose tokens may still be alive."""
    return sorted((k for k in keys.values() if k.published_at(now)), key=lambda k: -k.created_at)


def rotate(alg: str, now: float) -> Steps[SigningKey]:
    """Add a key for ``alg``: published at once, signing ``RING_REFRESH`` seconds later (at
    once when the ring is empty); retire the others, and drop those retired more than
    ``RETENTION`` ago. Returns the new key."""
    data = yield from reserved.read(reserved.JWT_KEYS)
    keys = parse(data)
    new = generate(alg, now, now + RING_REFRESH if keys else now)
    items: dict[str, Any] = {ENTRY + new.kid: new.entry()}
    gone: set[str] = set()
    for key in keys.values():
        if key.retired_at is None:
            items[ENTRY + key.kid] = dataclasses.replace(key, retired_at=now).entry()
        elif not key.published_at(now):
            gone.add(ENTRY + key.kid)
    yield from reserved.merge(reserved.JWT_KEYS, items, now, removed=frozenset(gone))
    return new


def ensure(alg: str, now: float) -> Steps[None]:
    """Make sure the ring has a key (the first start of a service)."""
    data = yield from reserved.read(reserved.JWT_KEYS)
    if not parse(data):
        yield from rotate(alg, now)


class Signer:
    """One process's view of the ring: reread every ``RING_REFRESH`` seconds to sign, and
    for every JWKS request (verifiers fetch it rarely, and it must show a new key at once)."""

    def __init__(self, store: Store, clock: Callable[[], float], algorithm: str) -> None:
        self.store = store
        self.clock = clock
        self.algorithm = algorithm
        self._keys: dict[str, SigningKey] = {}
        self._loaded_at: float | None = None
        self._private: dict[str, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey] = {}

    async def _read(self) -> dict[str, SigningKey]:
        keys = parse(await run_async(reserved.read(reserved.JWT_KEYS), self.store))
        if not keys:  # a store nobody prepared (``serve`` does): make the first key
            await run_async(ensure(self.algorithm, self.clock()), self.store)
            keys = parse(await run_async(reserved.read(reserved.JWT_KEYS), self.store))
        return keys

    async def _signing(self) -> SigningKey:
        now = self.clock()
        if self._loaded_at is None or now - self._loaded_at >= RING_REFRESH:
            self._keys, self._loaded_at = await self._read(), now
        key = signing_key(self._keys, now)
        if key is None:  # every key still waits (clocks apart): read again
            self._keys, self._loaded_at = await self._read(), now
            key = signing_key(self._keys, now) or max(
                self._keys.values(), key=lambda k: k.created_at
            )
        return key

    async def sign(self, claims: dict[str, Any]) -> str:
        key = await self._signing()
        private = self._private.get(key.kid)
        if private is None:
            loaded = serialization.load_pem_private_key(key.private_pem.encode(), None)
            if not isinstance(loaded, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
                raise ValueError(f"JWT key {key.kid!r} is neither Ed25519 nor P-256")
            private = self._private[key.kid] = loaded
        return jwt.encode(claims, private, algorithm=key.alg, headers={"kid": key.kid})

    async def jwks(self) -> dict[str, Any]:
        """The JWK Set of every published key, read from the store now."""
        keys = await self._read()
        return {"keys": [k.public_jwk for k in published(keys, self.clock())]}


def claims(
    *,
    user_id: str,
    handle: str,
    level: int,
    audience: str,
    now: float,
    ttl: int,
    deadline: float,
) -> dict[str, Any]:
    """The claims of a JWT for a session: ``exp`` is ``ttl`` away, or the session's
    deadline if that comes first (rounded down: the JWT never outlives the session)."""
    issued = int(now)
    expires = int(min(now + ttl, deadline))
    return {
        "sub": user_id,
        "sid": handle,
        "lvl": level,
        "aud": audience,
        "iat": issued,
        "exp": expires,
    }
