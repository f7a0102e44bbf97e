"""Records the service keeps in the session store beside the sessions: the API keys and
the JWT signing keys, so that every node of a cluster reads the same ones.

They live in a namespace no session can reach. A session is filed under the SHA-256 of its
token, a 43-character base64url string; a reserved record under the SHA-256 of a preimage
that starts with ``coatcheck.service`` and a NUL, which no token contains, so no token can
ever name one (as ``engine.clientside.revocation_key`` does for revocations). Their handles
start with ``coatcheck:``; a colon is never in a session's handle (base64url), and the API
refuses any handle outside that alphabet, so no call by handle reaches them either. They
have no user, so no user's list or revocation touches them.

Each is read and changed as a delta of its data keys (one key per API key, per signing
key), so two nodes changing different entries at once never lose each other's change.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from coatcheck.core.record import Patch, SessionRecord, encode_value
from coatcheck.engine.operations import Get, Steps, Upsert
from coatcheck.errors import ConfigError
from coatcheck.stores.base import AnyStore, Store

HANDLE_PREFIX: Final = "coatcheck:"
LIFETIME: Final = 10 * 365 * 24 * 3600.0
"""Reserved records must outlive every purge; each write pushes this deadline out again."""

API_KEYS: Final = "api-keys"
JWT_KEYS: Final = "jwt-keys"


def reserved_key(name: str) -> str:
    """Storage key of the reserved record ``name``: never a token's hash."""
    return hashlib.sha256(f"coatcheck.service\x00{name}".encode()).hexdigest()


def is_reserved_handle(handle: str) -> bool:
    return handle.startswith(HANDLE_PREFIX)


def read(name: str) -> Steps[dict[str, Any]]:
    """The data of reserved record ``name`` (empty when it does not exist yet)."""
    record = yield Get(reserved_key(name))
    return dict(record.data) if record is not None else {}


def merge(
    name: str, items: dict[str, Any], now: float, removed: frozenset[str] = frozenset()
) -> Steps[None]:
    """Set ``items`` and remove ``removed`` in reserved record ``name``, creating it when
    needed; its deadline moves ``LIFETIME`` ahead."""
    until = now + LIFETIME
    deadlines = {"last_seen_at": now, "expires_at": until, "absolute_at": until}
    patch = Patch(
        set_json={k: encode_value(k, v) for k, v in items.items()},
        set_items=dict(items),
        removed=removed.difference(items),
        fields=deadlines,
    )
    fresh = SessionRecord(
        key=reserved_key(name),
        handle=HANDLE_PREFIX + name,
        data=dict(items),
        created_at=now,
        last_seen_at=now,
        expires_at=until,
        absolute_at=until,
    )
    yield Upsert(patch, fresh)


def server_store(store: AnyStore) -> Store:
    """``store`` as the server-side store the service keeps its own records in (API keys,
    the JWT ring). A ``cookie://`` store keeps each session in its browser, where no other
    service can see it, so the service refuses it."""
    if not isinstance(store, Store):
        raise ConfigError(
            "the service needs a server-side store: a cookie:// store keeps each session in "
            "its browser, where no other service can see it"
        )
    return store
