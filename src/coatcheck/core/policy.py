"""Pure decisions of the engine: no I/O, no clock, no randomness.

``check`` says whether a stored record may be used now; ``plan_commit`` turns what a
handler did to a Session into one Plan. The async and the sync paths both call these, so
every rule about sessions is written exactly once, and each can be tested as plain data.
What a plan is made of is the Session's public engine side: ``pending``, ``intents``, the
data delta (``changed_keys()``, ``removed_keys``) and ``data_view``.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from coatcheck.core import events as ev
from coatcheck.core import tokens
from coatcheck.core.atomic import Op
from coatcheck.core.client import UA_HASH_KEY, ClientInfo
from coatcheck.core.config import SessionConfig
from coatcheck.core.record import (
    ROTATED_AT_KEY,
    ROTATED_TO_KEY,
    SUPERSEDED_AT_KEY,
    Patch,
    SessionRecord,
    encode_key,
    encode_value,
)
from coatcheck.core.session import Session
from coatcheck.errors import SessionTooLarge


class Verdict(enum.Enum):
    VALID = "valid"
    UNKNOWN = "unknown"
    IDLE_EXPIRED = "idle_expired"
    ABSOLUTE_EXPIRED = "absolute_expired"


_VALID = Verdict.VALID
_UNKNOWN = Verdict.UNKNOWN
_IDLE_EXPIRED = Verdict.IDLE_EXPIRED
_ABSOLUTE_EXPIRED = Verdict.ABSOLUTE_EXPIRED
"""The members as module constants for the per-request paths: on Python 3.11 reading an
attribute of an Enum class takes ``EnumType.__getattr__``'s slow lookup every time."""


def check(record: SessionRecord | None, now: float) -> Verdict:
    """Is ``record`` usable at ``now``? Deadlines are enforced here, on the server."""
    if record is None:
        return _UNKNOWN
    if now >= record.absolute_at:
        return _ABSOLUTE_EXPIRED
    if now >= record.expires_at:
        return _IDLE_EXPIRED
    return _VALID


def deadline(config: SessionConfig, *, now: float, absolute_at: float, remember: bool) -> float:
    """The deadline in force after activity at ``now``.

    A remember-me session has no idle limit: it lives until its absolute deadline.
    """
    if remember:
        return absolute_at
    idle_at = now + config.idle_timeout
    return absolute_at if absolute_at < idle_at else idle_at  # min(), without its tuple


def absolute_deadline(config: SessionConfig, *, now: float, remember: bool) -> float:
    """Absolute deadline of a session created or logged in at ``now``."""
    return now + (config.remember_timeout if remember else config.absolute_timeout)


class Action(enum.Enum):
    NOTHING = "nothing"
    TOUCH = "touch"
    UPDATE = "update"
    CREATE = "create"
    RENAME = "rename"
    DELETE = "delete"
    REPLACE = "replace"
    """Delete the old record and create a new one (data written after logout)."""
    CLEAR = "clear"
    """No store action: the client's token opened nothing, so it must drop it."""
    CONFLICT = "conflict"
    """No store action: the client's token was superseded moments ago by a concurrent
    login or ``regenerate()`` and this request would store something; the manager refuses
    it with SessionConflict (409) rather than create a session the newer cookie would
    never name, or clear that cookie."""


_TOUCH = Action.TOUCH
_UPDATE = Action.UPDATE
"""As ``_VALID``: the actions planned on every request, as module constants (the hot
paths also build Plan and Patch with positional arguments, the cheapest call)."""


class CookieAction(enum.Enum):
    NONE = "none"
    SET = "set"
    CLEAR = "clear"


_NO_COOKIE = CookieAction.NONE
_CREATED = (ev.CREATED,)
_CREATED_LOGIN = (ev.CREATED, ev.LOGIN)


@dataclass(slots=True)
class Plan:
    """What commit must do: the store action, and what the client must learn.

    A value: nothing changes a Plan once built. It is not a frozen dataclass only because
    building a frozen one costs three times as much, on every request.
    """

    action: Action
    cookie: CookieAction = CookieAction.NONE
    patch: Patch | None = None
    """For TOUCH, UPDATE and RENAME: the delta to the existing record."""
    record: SessionRecord | None = None
    """For CREATE and REPLACE: the new record, with ``key`` left empty for the caller."""
    max_age: int | None = None
    """Cookie lifetime in seconds for a persistent (remember-me) cookie; None = browser session."""
    events: tuple[str, ...] = ()
    """Lifecycle events this plan implies (``session.login``, ...)."""
    rotation: bool = False
    """A periodic rotation: the old token keeps working for ``rotation_grace`` (the caller
    leaves a marker under it), and is treated as stolen afterwards."""


NOTHING = Plan(Action.NOTHING)
CLEAR_STALE = Plan(Action.CLEAR, CookieAction.CLEAR)
"""A dead token (revoked, expired, unknown) came back and the request stored nothing: the
browser is told to drop it, or it would send it on every request forever."""
CONFLICT = Plan(Action.CONFLICT)


def rotation_due(record: SessionRecord, now: float, config: SessionConfig) -> bool:
    """Has the token of ``record`` lived ``rotation_interval`` since it was issued?"""
    interval = config.rotation_interval
    if interval is None:
        return False
    issued = record.meta.get(ROTATED_AT_KEY, record.created_at)
    return bool(now - issued >= interval)


_SIZE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""``json.dumps(data, separators=(",", ":"), ensure_ascii=False)``, built once."""


def data_size(session: Session, encoded: dict[str, str] | None = None) -> int:
    """JSON size of the session's data, as the stores will hold it.

    ``encoded`` holds values the caller has just encoded (``encode_value``). When it covers
    every key, the size is summed from those pieces (``{`` ``"key":value`` ``,`` ... ``}``)
    instead of encoding the whole session a second time on every write: the common
    one-key session (a counter, a user's cart) then costs no extra encoding at all.
    """
    data = session.data_view
    if encoded is not None and len(encoded) == len(data) and data:
        size = 2 * len(data) + 1  # braces, a colon per item, commas between them
        for key, text in encoded.items():
            size += len(f"{encode_key(key)}{text}".encode())
        return size
    return len(_SIZE_ENCODER.encode(data).encode())


def check_size(
    session: Session, config: SessionConfig, encoded: dict[str, str] | None = None
) -> None:
    size = data_size(session, encoded)
    if size > config.max_data_bytes:
        raise SessionTooLarge(size, config.max_data_bytes)


def _guard(record: SessionRecord, config: SessionConfig) -> str | None:
    """The handle a patch must find under the record's key: only with rotation on, the one
    case where something else (a rotation marker) can come to sit under a live key."""
    return record.handle if config.rotation_interval is not None else None


def rotation_marker(
    record: SessionRecord, now: float, config: SessionConfig, handle: str
) -> SessionRecord:
    """The record left under a rotated-out token: it points to the live session for
    ``rotation_grace`` and, until the session's absolute deadline, lets a later
    presentation of the old token be recognised as theft. Holds no data and no user."""
    return SessionRecord(
        key=record.key,
        handle=handle,
        data={},
        created_at=now,
        last_seen_at=now,
        expires_at=record.absolute_at,
        absolute_at=record.absolute_at,
        meta={ROTATED_TO_KEY: record.handle, ROTATED_AT_KEY: now},
    )


def superseded_marker(
    record: SessionRecord, now: float, config: SessionConfig, handle: str
) -> SessionRecord:
    """The record a login or ``regenerate()`` leaves under ``tokens.superseded_key`` of the
    key it moves ``record`` away from, for ``rotation_grace``: a request of the same client
    that still carries the old token (sent before the new cookie arrived) is then known
    for what it is, and is never told to clear the cookie, which would delete the newer
    one. Unlike a rotation marker it opens nothing: the old token of a login must never
    reach the logged-in session. Holds no data and no user."""
    until = now + config.rotation_grace
    return SessionRecord(
        key=tokens.superseded_key(record.key),
        handle=handle,
        data={},
        created_at=now,
        last_seen_at=now,
        expires_at=until,
        absolute_at=until,
        meta={SUPERSEDED_AT_KEY: now},
    )


def superseded(marker: SessionRecord | None, now: float) -> bool:
    """Is ``marker`` (read under ``tokens.superseded_key``) a live superseded marker?"""
    return marker is not None and SUPERSEDED_AT_KEY in marker.meta and check(marker, now) is _VALID


def lost_write(plan: Plan) -> bool:
    """Does ``plan`` (a TOUCH, UPDATE or RENAME whose record was gone) carry something the
    handler wrote, which must be reported (SessionConflict), never silently dropped? A
    touch or a bare ``regenerate()`` carries nothing of the handler's."""
    patch = plan.patch
    return plan.action is _UPDATE or (patch is not None and patch.touches_data)


_NO_KEYS: frozenset[str] = frozenset()


def _capped(session: Session, expires_at: float) -> float:
    """``expires_at``, brought forward to the session's ``cap_deadline()`` if it is earlier."""
    cap = session.intents.deadline_cap
    return cap if cap is not None and cap < expires_at else expires_at


def new_record(session: Session, config: SessionConfig, now: float, handle: str) -> SessionRecord:
    """A record holding the session's whole state, created at ``now`` (key left empty)."""
    data = session.data_view
    encoded = {key: encode_value(key, value) for key, value in data.items()}
    check_size(session, config, encoded)  # fails at commit, naming the key, before this
    remember = session.remember
    absolute_at = absolute_deadline(config, now=now, remember=remember)
    client = session.client if config.record_client else None
    user_id = session.user_id
    meta = session.meta
    if client is not None:
        _keep_hash(meta, client)
    return SessionRecord(
        key="",
        handle=handle,
        data=dict(data),
        meta=meta,
        created_at=now,
        last_seen_at=now,
        expires_at=_capped(
            session, deadline(config, now=now, absolute_at=absolute_at, remember=remember)
        ),
        absolute_at=absolute_at,
        user_id=user_id,
        auth_at=now if user_id is not None else None,
        remember=remember,
        user_agent=client.user_agent if client else None,
        ip=client.ip if client else None,
    )


def _keep_hash(meta: dict[str, Any], client: ClientInfo) -> None:
    """Keep the keyed hash of the client's full user agent (or drop a stale one)."""
    digest = client.user_agent_hash
    if digest is not None:
        meta[UA_HASH_KEY] = digest
    else:
        meta.pop(UA_HASH_KEY, None)


def cookie_max_age(remember: bool, absolute_at: float, now: float) -> int | None:
    return max(0, int(absolute_at - now)) if remember else None


def _touch_fields(
    record: SessionRecord, config: SessionConfig, now: float, cap: float | None
) -> dict[str, Any]:
    """The record fields every commit of a live session refreshes: activity and deadline
    (brought forward to ``cap``, the session's ``cap_deadline()``, if earlier)."""
    expires_at = deadline(config, now=now, absolute_at=record.absolute_at, remember=record.remember)
    if cap is not None and cap < expires_at:
        expires_at = cap
    return {"last_seen_at": now, "expires_at": expires_at}


def plan_commit(session: Session, config: SessionConfig, now: float, new_handle: str = "") -> Plan:
    """Decide what committing ``session`` at ``now`` requires.

    ``new_handle`` names a record this plan creates; handles are random, so a caller that
    leaves it empty mints one only when the plan does create (most commits do not) and this
    function stays pure. The rules, first match wins:

    ======================================  ============================================
    the session                             the plan
    ======================================  ============================================
    has no record yet                       CREATE if it holds anything or is kept (never
                                            with a ``cap_deadline()`` already passed);
                                            else CLEAR when the client's token was dead
    came with a token a concurrent login    CONFLICT if it would store anything; else
    or regenerate() just superseded         NOTHING (never CLEAR: the browser holds the
                                            newer token)
    was logged out, or its cap has passed   DELETE, or REPLACE when data was written after
                                            a logout (or it is kept)
    untouched by the handler                TOUCH when the touch interval has passed, or
                                            at once after ``keep_alive()``
    logs in over another user's session,    REPLACE: nothing of the ended session
    or after a logout in the same request   carries over
    regenerated or rotated                  RENAME, with the login's fields if any
    changed                                 UPDATE the delta; else TOUCH as above, or
                                            when its cap brings the deadline forward
    ======================================  ============================================

    Every deadline a plan writes is brought forward to the session's ``cap_deadline()``.
    """
    record = session.record
    if record is None:
        return _plan_new(session, config, now, new_handle)
    if not session.pending:
        # Untouched by the handler (most requests): at most a touch of the deadline.
        if now - record.last_seen_at >= config.effective_touch_interval:
            touched = _touch_fields(record, config, now, None)
            guard = _guard(record, config)
            return Plan(
                _TOUCH, _NO_COOKIE, Patch({}, {}, _NO_KEYS, touched, guard, handle=record.handle)
            )
        return NOTHING
    intents = session.intents
    cap = intents.deadline_cap
    if intents.logout or (cap is not None and cap <= now):
        return _plan_end(session, config, now, new_handle)
    set_json, set_items, removed, ops = _data_delta(session, config)
    if intents.login and (
        intents.ended or (record.user_id is not None and record.user_id != session.user_id)
    ):
        # Another user logs in on this device, or a login follows a logout in one request:
        # a new session (new handle, fresh data), so nothing of the ended session, not even
        # its public handle or an impersonation or MFA mark, carries over.
        return _plan_new(session, config, now, new_handle, Action.REPLACE)
    if intents.regenerate or intents.rotate:
        delta = Patch(set_json, set_items, removed, ops=ops, handle=record.handle)
        return _plan_rename(session, record, config, now, delta)
    return _plan_update(session, record, config, now, (set_json, set_items, removed, ops))


def _plan_update(
    session: Session,
    record: SessionRecord,
    config: SessionConfig,
    now: float,
    delta: tuple[dict[str, str], dict[str, Any], frozenset[str], tuple[Op, ...]],
) -> Plan:
    """The same token, the data ``delta`` (UPDATE); with no delta, a TOUCH when the touch
    interval has passed, the session's cap brings its deadline forward, or the handler
    asked for a ``keep_alive()``."""
    set_json, set_items, removed, ops = delta
    intents = session.intents
    fields = _touch_fields(record, config, now, intents.deadline_cap)
    guard = _guard(record, config)
    if set_json or removed or ops or intents.meta_changed:
        if intents.meta_changed:
            fields["meta"] = session.meta
        limit = config.max_data_bytes if set_json or ops else None
        patch = Patch(set_json, set_items, removed, fields, guard, ops, limit, record.handle)
        return Plan(_UPDATE, _NO_COOKIE, patch)
    if (
        now - record.last_seen_at >= config.effective_touch_interval
        or fields["expires_at"] < record.expires_at
        or intents.keep_alive
    ):
        return Plan(
            _TOUCH, _NO_COOKIE, Patch({}, {}, _NO_KEYS, fields, guard, handle=record.handle)
        )
    return NOTHING


def _plan_new(
    session: Session,
    config: SessionConfig,
    now: float,
    new_handle: str,
    action: Action = Action.CREATE,
) -> Plan:
    """A whole new record: the first store of a session (CREATE), or one replacing the
    previous user's (REPLACE). A session that holds nothing is not stored, unless the
    caller asked to ``keep()`` it; nor is one whose ``cap_deadline()`` has passed. If the
    client came with a token that opened nothing, it is told to drop that (CLEAR)."""
    intents = session.intents
    cap = intents.deadline_cap
    if action is Action.CREATE and (
        (cap is not None and cap <= now)
        or not (session.data_view or intents.login or intents.meta_changed or intents.keep)
    ):
        if session.superseded:  # the browser holds the newer token: leave it alone
            return NOTHING
        return CLEAR_STALE if session.dead_token else NOTHING
    if session.superseded:
        return CONFLICT
    new = new_record(session, config, now, new_handle)
    names = _CREATED_LOGIN if intents.login else _CREATED
    return Plan(
        action,
        CookieAction.SET,
        record=new,
        max_age=cookie_max_age(new.remember, new.absolute_at, now),
        events=(ev.LOGOUT, *names) if intents.ended and action is Action.REPLACE else names,
    )


def _plan_end(session: Session, config: SessionConfig, now: float, new_handle: str) -> Plan:
    """Logout ends the record; data written after it (or ``keep()``) starts a new,
    anonymous one. A ``cap_deadline()`` already passed ends it too, and nothing follows."""
    intents = session.intents
    cap = intents.deadline_cap
    if cap is not None and cap <= now:
        names = (ev.LOGOUT,) if intents.logout else (ev.EXPIRED,)
        return Plan(Action.DELETE, CookieAction.CLEAR, events=names)
    if session.data_view or intents.keep:
        new = new_record(session, config, now, new_handle)
        return Plan(Action.REPLACE, CookieAction.SET, record=new, events=(ev.LOGOUT, ev.CREATED))
    return Plan(Action.DELETE, CookieAction.CLEAR, events=(ev.LOGOUT,))


def _data_delta(
    session: Session, config: SessionConfig
) -> tuple[dict[str, str], dict[str, Any], frozenset[str], tuple[Op, ...]]:
    """The keys the handler set (or changed in place), encoded and size-checked, the
    keys it removed, and the atomic operations on the other keys (an operation on a key
    changed in place after it is part of that change)."""
    data = session.data_view
    set_json: dict[str, str] = {}
    set_items: dict[str, Any] = {}
    for key in session.changed_keys():
        value = data[key]
        set_json[key] = encode_value(key, value)
        set_items[key] = value
    gone = session.removed_keys
    removed = frozenset(gone) if gone else _NO_KEYS
    ops: tuple[Op, ...] = ()
    if session.ops:
        ops = tuple(op for op in session.ops if op[1] not in set_json)
    if set_json or ops:
        check_size(session, config, set_json)
    return set_json, set_items, removed, ops


def _plan_rename(
    session: Session, record: SessionRecord, config: SessionConfig, now: float, delta: Patch
) -> Plan:
    """A new token for the same record: an explicit regenerate (with a login's fields when
    it logs in) or the periodic rotation, carrying the data ``delta``."""
    meta = session.meta
    meta[ROTATED_AT_KEY] = now
    fields: dict[str, Any] = {"last_seen_at": now, "meta": meta}
    remember = session.remember
    absolute_at = record.absolute_at
    names: tuple[str, ...] = (ev.REGENERATED,)
    intents = session.intents
    if intents.login:
        absolute_at = absolute_deadline(config, now=now, remember=remember)
        fields.update(
            user_id=session.user_id, auth_at=now, absolute_at=absolute_at, remember=remember
        )
        client = session.client if config.record_client else None
        if client is not None:
            fields.update(user_agent=client.user_agent, ip=client.ip)
            _keep_hash(meta, client)
        names = (ev.LOGIN,)
    fields["expires_at"] = _capped(
        session, deadline(config, now=now, absolute_at=absolute_at, remember=remember)
    )
    limit = config.max_data_bytes if delta.set_json or delta.ops else None
    patch = Patch(
        delta.set_json,
        delta.set_items,
        delta.removed,
        fields,
        _guard(record, config),
        delta.ops,
        limit,
        record.handle,
    )
    periodic = not intents.regenerate
    return Plan(
        Action.RENAME,
        CookieAction.SET,
        patch=patch,
        max_age=cookie_max_age(remember, absolute_at, now),
        events=(ev.ROTATED,) if periodic else names,
        rotation=periodic,
    )
