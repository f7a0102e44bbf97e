"""What a store holds: SessionRecord, Patch, engine metadata keys and the JSON encoding of values.

SessionRecord and Patch live apart from Session (coatcheck.core.session), what an application sees.

The two are kept apart on purpose: metadata (deadlines, user, client) lives in typed fields
of the record, never as magic keys inside the user's data, and the Session mapping records
what the handler changed and which intents (login, logout, regenerate) it stated, so that
commit can send a delta instead of a snapshot and make no I/O decisions of its own.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from coatcheck.core.atomic import Op, apply_ops, data_bytes
from coatcheck.core.csrf_secret import SECRET_KEY
from coatcheck.errors import InvalidUserId, SessionDataError, SessionTooLarge

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
    ops: tuple[Op, ...] = ()
    """Atomic operations (``coatcheck.core.atomic``), applied in order to the values the
    store holds, after ``removed`` and ``set_json``. Never on a key those name: the
    Session folds an operation after a write or a removal of its key into the write."""
    max_bytes: int | None = None
    """When set, the store measures the data the delta would leave (``atomic.data_bytes``)
    and refuses the whole patch over it with ``SessionTooLarge``: checked with the write,
    so concurrent writers of different keys cannot together pass the limit."""
    handle: str | None = None
    """The public handle of the record this patch is meant for, when the engine knows it
    (every patch of a session's commit). Not a condition (that is ``expect_handle``): a
    store that seals values at rest binds each one to its record with it."""

    def fits(self, handle: str) -> bool:
        """May this patch be applied to a record with ``handle``?"""
        return self.expect_handle is None or self.expect_handle == handle

    @property
    def touches_data(self) -> bool:
        return bool(self.set_json or self.removed or self.ops)

    def apply_to(self, record: SessionRecord) -> None:
        """Apply in place to an in-memory record (the reference semantics of a Patch).

        Raises ``OperationTypeError`` or ``SessionTooLarge``, changing nothing, when an
        operation clashes with a value or the result would pass ``max_bytes``."""
        if self.set_json or self.removed or self.ops:
            record.data = self.new_data(record.data)
        for name, value in self.fields.items():
            setattr(record, name, value)

    def new_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """The data this patch leaves of ``data`` (a new dict; ``data`` is not changed), or
        the error that refuses the whole patch."""
        data = dict(data)
        for key in self.removed:
            data.pop(key, None)
        data.update(self.set_items)
        if self.ops:
            apply_ops(data, self.ops)
        limit = self.max_bytes
        if limit is not None and (self.set_json or self.ops):
            size = data_bytes(data)
            if size > limit:
                raise SessionTooLarge(size, limit)
        return data


LEVEL_KEY = "level"
"""Engine metadata key of the assurance level of the current authentication."""
REAUTH_KEY = "reauth"
"""Engine metadata key set when the session must authenticate again before sensitive use."""
ROTATED_AT_KEY = "rotated_at"
"""Engine metadata key of when the token last changed (periodic rotation counts from it)."""
ROTATED_TO_KEY = "rotated_to"
"""Set on a rotation marker: the handle of the live session the old token now points to."""
SUPERSEDED_AT_KEY = "superseded_at"
"""Set on a superseded marker (``policy.superseded_marker``): when a login or
``regenerate()`` moved the record away from the old token."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""Built once: ``json.dumps`` with keyword arguments builds an encoder on every call, which
costs more than encoding a small session value."""

encode_key = json.encoder.encode_basestring
"""JSON text of a str (quoted, escaped, non-ASCII kept): what ``json.dumps`` writes for a
dict key or a str value with ``ensure_ascii=False``."""


_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""U+0000 in JSON text: ``\\u0000`` after an even number of backslashes."""


def check_key(key: str) -> None:
    """Refuse a data key some store cannot keep, naming it: U+0000 (PostgreSQL's jsonb
    has no way to hold it) or a lone surrogate (not UTF-8, which every store writes).
    Refused on every store alike, so an app behaves the same whichever it runs on; any
    other ``str`` a JSON object can hold is a key every store keeps as it is."""
    if "\x00" in key:
        raise SessionDataError(
            f"session key {key!r} cannot be stored: it holds the character U+0000, which "
            "not every store can keep (PostgreSQL's jsonb cannot)"
        )
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise SessionDataError(
                f"session key {key!r} cannot be stored: a lone surrogate is not Unicode text"
            ) from None


def encode_value(key: str, value: Any) -> str:
    """JSON-encode one session value, naming the key when it cannot be stored.

    The output is exactly ``json.dumps(value, separators=(",", ":"), ensure_ascii=False,
    allow_nan=False)``; the scalar types a session mostly holds (exact ``str`` and ``int``,
    not subclasses, whose JSON form could differ) skip the general encoder. The key is
    checked too (``check_key``), and text anywhere in the value (a string, a nested key)
    may hold neither U+0000 nor a lone surrogate, for the same reason.
    """
    check_key(key)
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
    except (TypeError, ValueError) as exc:
        raise SessionDataError(
            f"session[{key!r}] cannot be stored: {type(value).__name__} is not "
            f"JSON-serializable ({exc})"
        ) from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise SessionDataError(
            f"session[{key!r}] cannot be stored: it holds the character U+0000, which not "
            "every store can keep (PostgreSQL's jsonb cannot)"
        )
    return text


_MOMENTS = ("created_at", "last_seen_at", "expires_at", "absolute_at")
_MISSING = object()


def _moment(value: object) -> bool:
    """A finite number of seconds (not a bool, not NaN, not infinite)."""
    kind = type(value)
    return (kind is float or kind is int) and math.isfinite(value)  # type: ignore[arg-type]


def damage(record: SessionRecord) -> str | None:
    """What is wrong with a record read back from a store, or None when nothing is.

    A store's content can be damaged outside coatcheck (an operator's edit, another
    program writing under the same prefix, a half-written file); every store builds its
    record and asks this before handing it out, so that such a record is a fresh
    session with a warning, never a TypeError in the policy or the device list. The
    answer names the field, never its value (it may be personal data). It runs on every
    load, so the common answer (nothing) takes one pass of type checks.
    """
    r = record
    if (
        type(r.handle) is str
        and r.handle
        and type(r.data) is dict
        and type(r.remember) is bool
        and _moment(r.created_at)
        and _moment(r.last_seen_at)
        and _moment(r.expires_at)
        and _moment(r.absolute_at)
        and (r.user_id is None or (type(r.user_id) is str and r.user_id))
        and (r.auth_at is None or _moment(r.auth_at))
        and (r.user_agent is None or type(r.user_agent) is str)
        and (r.ip is None or type(r.ip) is str)
        and type(r.meta) is dict
    ):
        return _meta_damage(r.meta) if r.meta else None
    return _field_damage(r)


def _field_damage(r: SessionRecord) -> str:
    """The first field of ``r`` that ``damage`` refuses (its slow path: name it)."""
    if type(r.handle) is not str or not r.handle:
        return "handle"
    if type(r.data) is not dict:
        return "data"
    for name in _MOMENTS:
        if not _moment(getattr(r, name)):
            return name
    if r.user_id is not None and (type(r.user_id) is not str or not r.user_id):
        return "user_id"
    if r.auth_at is not None and not _moment(r.auth_at):
        return "auth_at"
    if type(r.remember) is not bool:
        return "remember"
    for name in ("user_agent", "ip"):
        value = getattr(r, name)
        if value is not None and type(value) is not str:
            return name
    return "meta"


def _meta_damage(meta: dict[str, Any]) -> str | None:
    """The engine metadata key of another type than the engine reads, if any (written
    out key by key: it runs on every load of a session with metadata)."""
    get = meta.get
    if type(get(LEVEL_KEY, 1)) is not int:
        return f"meta[{LEVEL_KEY!r}]"
    if type(get(SECRET_KEY, "")) is not str:
        return f"meta[{SECRET_KEY!r}]"
    if type(get(REAUTH_KEY, False)) is not bool:
        return f"meta[{REAUTH_KEY!r}]"
    rotated_at = get(ROTATED_AT_KEY, 0)
    if rotated_at != 0 and not _moment(rotated_at):
        return f"meta[{ROTATED_AT_KEY!r}]"
    rotated_to = get(ROTATED_TO_KEY, _MISSING)
    if rotated_to is not _MISSING:
        if type(rotated_to) is not str:
            return f"meta[{ROTATED_TO_KEY!r}]"
        if ROTATED_AT_KEY not in meta:
            return f"meta[{ROTATED_AT_KEY!r}]"  # a rotation marker says when it was left
    return None
