"""Short-lived JWTs for upstream services, signed by a key ring kept in the session store.

A session token is a credential only the service can check; a JWT is one any upstream
service can check alone, with the public keys of ``/.well-known/jwks.json``. Claims:
``sub`` (user), ``sid`` (the session's handle), ``lvl`` (assurance level), ``aud``, ``iat``,
``exp``. No JWT lives longer than ``JWT_MAX_TTL`` nor past its session's deadline.

The ring lives in the reserved record ``jwt-keys`` (see ``reserved``), so every node signs
with the same keys: one entry per key (``k:<kid>``: algorithm, private key as PKCS#8 PEM,
public JWK, created and retired times) and ``current``, the kid that signs. ``rotate`` adds
a key, makes it current and retires the others; a retired key stays published for
``RETENTION`` seconds, long enough for every token it signed to expire: a node rereads the
ring every ``RING_REFRESH`` seconds, so it may sign with the old key that long after the
rotation, and each such token lives at most ``JWT_MAX_TTL``.

The ring's private keys are as secret as the store itself: whoever can read the store can
sign tokens.
"""

from __future__ import annotations

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
RETENTION: Final = JWT_MAX_TTL + RING_REFRESH + 60.0
"""Seconds a retired key stays in the JWKS: its last token's lifetime, the time a node may
still sign with it after a rotation, and a minute for clocks that disagree."""
ENTRY: Final = "k:"
CURRENT: Final = "current"


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    private_pem: str
    public_jwk: dict[str, Any]
    created_at: float
    retired_at: float | None = None

    def entry(self) -> dict[str, Any]:
        return {
            "alg": self.alg,
            "private": self.private_pem,
            "public": self.public_jwk,
            "created_at": self.created_at,
            "retired_at": self.retired_at,
        }

    def published_at(self, now: float) -> bool:
        """Is the key still in the JWKS at ``now``?"""
        return self.retired_at is None or now < self.retired_at + RETENTION


def generate(alg: str, now: float) -> SigningKey:
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
    return SigningKey(kid, alg, pem, public_jwk, now)


def parse(data: dict[str, Any]) -> tuple[str | None, dict[str, SigningKey]]:
    """The current kid and every key of the ring's data."""
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
                retired_at=float(retired) if retired is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            continue
    current = data.get(CURRENT)
    return (current if isinstance(current, str) and current in keys else None), keys


def rotate(alg: str, now: float) -> Steps[SigningKey]:
    """Add a key for ``alg`` and make it current; retire the others, and drop those retired
    more than ``RETENTION`` ago. Returns the new key."""
    data = yield from reserved.read(reserved.JWT_KEYS)
    _, keys = parse(data)
    new = generate(alg, now)
    items: dict[str, Any] = {ENTRY + new.kid: new.entry(), CURRENT: new.kid}
    gone: set[str] = set()
    for key in keys.values():
        if key.retired_at is None:
            retired = SigningKey(
                key.kid, key.alg, key.private_pem, key.public_jwk, key.created_at, now
            )
            items[ENTRY + key.kid] = retired.entry()
        elif not key.published_at(now):
            gone.add(ENTRY + key.kid)
    yield from reserved.merge(reserved.JWT_KEYS, items, now, removed=frozenset(gone))
    return new


def ensure(alg: str, now: float) -> Steps[None]:
    """Make sure the ring has a current key (the first start of a service)."""
    data = yield from reserved.read(reserved.JWT_KEYS)
    current, _ = parse(data)
    if current is None:
        yield from rotate(alg, now)


class Signer:
    """One process's view of the ring: reread every ``RING_REFRESH`` seconds."""

    def __init__(self, store: Store, clock: Callable[[], float], algorithm: str) -> None:
        self.store = store
        self.clock = clock
        self.algorithm = algorithm
        self._current: str | None = None
        self._keys: dict[str, SigningKey] = {}
        self._loaded_at: float | None = None
        self._private: dict[str, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey] = {}

    async def _ring(self) -> tuple[SigningKey, dict[str, SigningKey]]:
        now = self.clock()
        if self._loaded_at is None or now - self._loaded_at >= RING_REFRESH or not self._current:
            data = await run_async(reserved.read(reserved.JWT_KEYS), self.store)
            current, keys = parse(data)
            if current is None:
                await run_async(rotate(self.algorithm, now), self.store)
                data = await run_async(reserved.read(reserved.JWT_KEYS), self.store)
                current, keys = parse(data)
            self._current, self._keys, self._loaded_at = current, keys, now
        assert self._current is not None
        return self._keys[self._current], self._keys

    async def sign(self, claims: dict[str, Any]) -> str:
        key, _ = await self._ring()
        private = self._private.get(key.kid)
        if private is None:
            loaded = serialization.load_pem_private_key(key.private_pem.encode(), None)
            if not isinstance(loaded, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
                raise ValueError(f"JWT key {key.kid!r} is neither Ed25519 nor P-256")
            private = self._private[key.kid] = loaded
        return jwt.encode(claims, private, algorithm=key.alg, headers={"kid": key.kid})

    async def jwks(self) -> dict[str, Any]:
        """The JWK Set of every published key."""
        _, keys = await self._ring()
        now = self.clock()
        published = sorted(
            (k for k in keys.values() if k.published_at(now)), key=lambda k: -k.created_at
        )
        return {"keys": [k.public_jwk for k in published]}


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
