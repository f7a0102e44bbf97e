"""CookieStore: the session travels in the cookie, encrypted and authenticated.

For apps that want no session server at all. ``SessionManager(CookieStore(keys=[...]))``
or the ``cookie://`` URL (keys from ``COATCHECK_COOKIE_KEYS``) is all it takes; the edges
are unchanged, because the sealed session simply takes the place of the token.

What is sealed (``coatcheck.sealing``: AES-256-GCM, key id in the header): the record's
handle, its times (created, last seen, the idle and absolute deadlines, login time), the
user id, the remember-me flag, engine metadata, and the data. Deadlines live inside the
authenticated payload, so a client cannot extend them and a replayed cookie dies at its own
deadline. The user agent and IP are left out: nothing could list them, and they would cost
bytes in every request.

Compression: the data (only the data) is deflated when that makes it shorter. Engine
metadata stays outside the compressed part so that secrets kept there never share a
compression window with values an attacker may choose; a length side channel on the data
itself (secrets and attacker-chosen values in one session, lengths observed on the wire)
is the same trade-off as any compressed cookie and is documented for apps to weigh.

Keys: ``CookieStore(keys=[primary, older, ...])``; entries are base64url text of 32 random
bytes (``coatcheck.sealing.new_key()``), optionally ``"kid:key"``. Rotate in three deploys:
add the new key second; promote it to first; retire the old one after ``remember_timeout``
(see ``KeyRing``). Use a separate ring per application.

Revocation: pass ``revocations=`` a store (or a store URL) to make logout and
``revoke_user`` effective against copied cookies; see ``coatcheck.engine.clientside``.

What it declares (``coatcheck.stores.base``): ``ClientSide``, and ``Purgeable`` (it purges
its revocation store). It keeps no records, so it has neither the core contract nor a
``HandleIndex`` or ``UserIndex``: a cookie session lives only in its browser, and nothing
on the server can name it. The manager refuses ``list_user_sessions``, ``revoke(handle)``
and ``is_active`` over it with ``MissingCapability``; no method here refuses anything.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from coatcheck.core.record import SessionRecord, damage
from coatcheck.errors import ConfigError, CookieTooLargeError, InvalidCookie, UnsupportedOperation
from coatcheck.security.sealing import KeyRing, KeySpec, UnsealError, keys_from_env
from coatcheck.stores.base import ClientSide, Purgeable, Store
from coatcheck.stores.registry import from_url as store_from_url

__all__ = [
    "CookieStore",
    "CookieTooLargeError",
    "UnsupportedOperation",
    "from_url",
]

ENV_REVOCATIONS = "COATCHECK_COOKIE_REVOCATIONS"
"""Optional store URL for revocations when the store comes from ``cookie://``."""

COMPRESSED = 0x01
"""Flag bit of the payload's first byte: the data part is raw-deflated.

Payload: ``flags (1 byte) | metadata (JSON array) | NUL | data (JSON object, maybe
deflated)``. Compact JSON never holds a raw NUL byte, so the first one after the flags ends
the metadata."""
MAX_INFLATED = 256 * 1024
"""Decompression stops here: a 4 KB cookie has no business holding more."""

_SEP = (",", ":")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    return float(value)


def _optional_number(value: Any) -> float | None:
    return None if value is None else _number(value)


class CookieStore(ClientSide, Purgeable):
    """A client-side store: sessions sealed into the cookie under a key ring.

    ``keys``: the ring, primary first. ``revocations``: a coatcheck store (or store URL)
    keeping per-user "not before" times and logged-out handles, or None for a store with
    no server state at all. ``compress_min``: data shorter than this many bytes of JSON is
    never worth deflating.
    """

    def __init__(
        self,
        keys: Iterable[KeySpec],
        *,
        revocations: Store | str | None = None,
        compress_min: int = 64,
    ) -> None:
        self.ring = KeyRing(keys)
        built = store_from_url(revocations) if isinstance(revocations, str) else revocations
        if built is not None and not isinstance(built, Store):
            raise ConfigError("the revocation store must be a server-side store")
        self.revocations: Store | None = built
        self.compress_min = compress_min

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        revocations: Store | str | None = None,
    ) -> CookieStore:
        """Keys from ``COATCHECK_COOKIE_KEYS``; revocations from the argument, else from
        ``COATCHECK_COOKIE_REVOCATIONS`` (a store URL) when set."""
        env = os.environ if environ is None else environ
        if revocations is None:
            revocations = env.get(ENV_REVOCATIONS, "").strip() or None
        return cls(keys_from_env(env), revocations=revocations)

    def __repr__(self) -> str:
        return f"CookieStore({self.ring!r}, revocations={self.revocations!r})"

    # -- the client-side contract (coatcheck.stores.base.ClientSideStore) -------------------
    def seal(self, record: SessionRecord) -> str:
        head = json.dumps(
            [
                record.handle,
                record.created_at,
                record.last_seen_at,
                record.expires_at,
                record.absolute_at,
                record.user_id,
                record.auth_at,
                1 if record.remember else 0,
                record.meta,
            ],
            separators=_SEP,
            ensure_ascii=False,
            allow_nan=False,
        ).encode()
        body = json.dumps(
            record.data, separators=_SEP, ensure_ascii=False, allow_nan=False
        ).encode()
        flags = 0
        if len(body) >= self.compress_min:
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            packed = packer.compress(body) + packer.flush()
            if len(packed) < len(body):
                body, flags = packed, COMPRESSED
        return self.ring.seal(bytes((flags,)) + head + b"\x00" + body)

    def unseal(self, value: str) -> SessionRecord:
        try:
            plain = self.ring.unseal(value)
        except UnsealError as exc:
            raise InvalidCookie(exc.reason) from None
        try:
            return self._parse(plain)
        except (ValueError, TypeError, IndexError, zlib.error):
            # Authentic but unreadable: written by an incompatible version of this code.
            raise InvalidCookie("unreadable") from None

    @staticmethod
    def _parse(plain: bytes) -> SessionRecord:
        flags = plain[0]
        end = plain.index(b"\x00", 1)
        head = json.loads(plain[1:end])
        body = plain[end + 1 :]
        if flags & COMPRESSED:
            unpacker = zlib.decompressobj(-15)
            body = unpacker.decompress(body, MAX_INFLATED)
            if unpacker.unconsumed_tail or not unpacker.eof:
                raise ValueError("inflated data too large or incomplete")
        data = json.loads(body)
        handle, created, seen, expires, absolute, user_id, auth_at, remember, meta = head
        if (
            not isinstance(handle, str)
            or not isinstance(data, dict)
            or not isinstance(meta, dict)
            or not (user_id is None or isinstance(user_id, str))
            or remember not in (0, 1)
        ):
            raise ValueError("unexpected payload shape")
        record = SessionRecord(
            key="",
            handle=handle,
            data=data,
            created_at=_number(created),
            last_seen_at=_number(seen),
            expires_at=_number(expires),
            absolute_at=_number(absolute),
            user_id=user_id,
            auth_at=_optional_number(auth_at),
            remember=bool(remember),
            meta=meta,
        )
        if damage(record) is not None:  # (engine metadata of another shape, say)
            raise ValueError("unexpected payload shape")
        return record

    # -- what it can do besides: purge its revocation store, close it ----------------------
    def purge_expired_sync(self, now: float, batch_size: int) -> int:
        """Expired sessions vanish with their cookies; this purges the revocation store
        (none, or one whose records vanish by themselves: nothing to purge, 0)."""
        revocations = self.revocations
        if not isinstance(revocations, Purgeable):
            return 0
        return revocations.purge_expired_sync(now, batch_size)

    async def purge_expired(self, now: float, batch_size: int) -> int:
        revocations = self.revocations
        if not isinstance(revocations, Purgeable):
            return 0
        return await revocations.purge_expired(now, batch_size)

    def close_sync(self) -> None:
        if self.revocations is not None:
            self.revocations.close_sync()

    async def close(self) -> None:
        if self.revocations is not None:
            await self.revocations.close()


def from_url(url: str) -> CookieStore:
    """``cookie://`` (keys from ``COATCHECK_COOKIE_KEYS``, never from the URL, which ends up
    in logs); option ``revocations=<percent-encoded store URL>``, else the
    ``COATCHECK_COOKIE_REVOCATIONS`` variable."""
    parts = urlsplit(url)
    if parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(
            f"cookie URLs name no host or path (keys come from the environment): {url!r}"
        )
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    revocations = options.pop("revocations", None)
    if options:
        raise ConfigError(f"unknown cookie URL options: {', '.join(sorted(options))}")
    return CookieStore.from_env(revocations=revocations)
