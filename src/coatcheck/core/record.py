"""What a store holds: SessionRecord, Patch, engine metadata keys and the JSON encoding of values.

SessionRecord and Patch live apart from Session (coatcheck.core.session), what an application sees.

The two are kept apart on purpose: metadata (deadlines, user, client) lives in typed fields
of the record, never as magic keys inside the user's data, and the Session mapping records
what the handler changed and which intents (login, logout, regenerate) it stated, so that
commit can send a delta instead of a snapshot and make no I/O decisions of its own.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from coatcheck.errors import InvalidUserId, SessionDataError

UserId = str | int | uuid.UUID
"""What names a user: the app's own id, as a string, an integer or a UUID primary key. It
is kept as its string (``42`` and ``"42"`` are the same user)."""


def user_key(user_id: object) -> str:
    """The string a user is filed under, or InvalidUserId for a value that names nobody.

    ``None`` is what ``session.user_id`` is for an anonymous visitor, so passing it on to
    a device list or a revocation is the common mistake: it must never reach the store as
    the user "None". Bools (``True`` would be "True") and the empty string are refused
    too, as is any other type (a float, bytes, a model instance) whose string form is no
    one's id.
    """
    if not isinstance(user_id, (str, int, uuid.UUID)) or isinstance(user_id, bool):
        raise InvalidUserId(
            f"{user_id!r} is not a user id: expected a non-empty str, an int or a UUID "
            "(an anonymous session's user_id is None: check session.is_authenticated first)"
        )
    text = str(user_id)
    if not text:
        raise InvalidUserId("'' is not a user id: expected a non-empty str, an int or a UUID")
    return text


PATCHABLE_FIELDS = frozenset(
    {
        "user_id",
        "last_seen_at",
        "auth_at",
        "expires_at",
        "absolute_at",
        "remember",
        "user_agent",
        "ip",
        "meta",
    }
)
"""Record fields a Patch may overwrite. ``key``, ``handle`` and ``created_at`` never change
in place (a new key is a rename)."""


@dataclass(slots=True)
class SessionRecord:
    """One stored session. ``key`` is SHA-256 of the token, never the token itself."""

    key: str
    handle: str
    data: dict[str, Any]
    created_at: float
    last_seen_at: float
    expires_at: float
    """The deadline in force: the earlier of the idle deadline and ``absolute_at``."""
    absolute_at: float
    user_id: str | None = None
    auth_at: float | None = None
    remember: bool = False
    user_agent: str | None = None
    ip: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Engine-owned metadata for extensions (assurance level, CSRF secret, ...)."""


@dataclass(slots=True)
class Patch:
    """A delta to apply atomically to one stored record.

    ``set_json`` holds the changed keys already encoded as JSON text (stores that keep
    one field per key, like a Redis hash, use it as is); ``set_items`` holds the same values
    decoded, for stores that merge objects. ``fields`` overwrites record metadata.

    A value: nothing changes a Patch once built. It is not a frozen dataclass only because
    building a frozen one costs three times as much, on every writing request.
    """

    set_json: dict[str, str] = field(default_factory=dict)
    set_items: dict[str, Any] = field(default_factory=dict)
    removed: frozenset[str] = frozenset()
    fields: dict[str, Any] = field(default_factory=dict)
    expect_handle: str | None = None
    """When set, the store applies the patch only if the record under the key has this
    handle. With rotation on, a concurrent request may have moved the session to a new
    key and left a rotation marker (another handle) under the old one: a patch meant for
    the session must not land on the marker (see ``SessionManager._moved``)."""
    handle: str | None = None
    """The public handle of the record this patch is meant for, when the engine knows it
    (every patch of a session's commit). Not a condition (that is ``expect_handle``): a
    store that seals values at rest binds each one to its record with it."""

    def fits(self, handle: str) -> bool:
        """May this patch be applied to a record with ``handle``?"""
        return self.expect_handle is None or self.expect_handle == handle

    @property
    def touches_data(self) -> bool:
        return bool(self.set_json or self.removed)

    def apply_to(self, record: SessionRecord) -> None:
        """Apply in place to an in-memory record (the reference semantics of a Patch)."""
        data = record.data
        for key in self.removed:
            data.pop(key, None)
        data.update(self.set_items)
        for name, value in self.fields.items():
            setattr(record, name, value)


LEVEL_KEY = "level"
"""Engine metadata key of the assurance level of the current authentication."""
REAUTH_KEY = "reauth"
"""Engine metadata key set when the session must authenticate again before sensitive use."""
ROTATED_AT_KEY = "rotated_at"
"""Engine metadata key of when the token last changed (periodic rotation counts from it)."""
ROTATED_TO_KEY = "rotated_to"
"""Set on a rotation marker: the handle of the live session the old token now points to."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""Built once: ``json.dumps`` with keyword arguments builds an encoder on every call, which
costs more than encoding a small session value."""

encode_key = json.encoder.encode_basestring
"""JSON text of a str (quoted, escaped, non-ASCII kept): what ``json.dumps`` writes for a
dict key or a str value with ``ensure_ascii=False``."""


def encode_value(key: str, value: Any) -> str:
    """JSON-encode one session value, naming the key when it cannot be stored.

    The output is exactly ``json.dumps(value, separators=(",", ":"), ensure_ascii=False,
    allow_nan=False)``; the scalar types a session mostly holds (exact ``str`` and ``int``,
    not subclasses, whose JSON form could differ) skip the general encoder.
    """
    try:
        kind = type(value)
        if kind is str:
            text = encode_key(value)
        elif kind is int:
            return repr(value)  # what json writes for an exact int (ValueError past the limit)
        else:
            text = _ENCODER.encode(value)
        if not text.isascii():
            text.encode("utf-8")  # a lone surrogate cannot be stored as UTF-8
        return text
    except (TypeError, ValueError) as exc:
        raise SessionDataError(
            f"session[{key!r}] cannot be stored: {type(value).__name__} is not "
            f"JSON-serializable ({exc})"
        ) from None
