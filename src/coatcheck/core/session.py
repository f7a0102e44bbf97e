"""What an application sees: ``Session``, a mapping of JSON values that records what the
handler changed and which intents (login, logout, regenerate) it stated, so that commit can
send a delta instead of a snapshot and make no I/O decisions of its own.

What the engine reads of it is public and read-only: ``pending`` (is there anything for
a commit to look at?), ``intents`` (an ``Intents`` value), ``changed_keys()`` and
``removed_keys`` (the data delta), ``data_view``, ``record`` and ``client``. Its few
writes go through the methods under "engine side" (``schedule_rotation``, ``stored``,
``stored_deadline``). Policy and the engine touch no private field of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from coatcheck.core import csrf_secret
from coatcheck.core.atomic import Op
from coatcheck.core.client import ClientInfo
from coatcheck.core.consent import DEFAULT_POLICY, Consent, ConsentChange, ConsentPolicy
from coatcheck.core.intents import NO_INTENTS, Intents
from coatcheck.core.record import (
    LEVEL_KEY,
    REAUTH_KEY,
    SessionRecord,
    UserId,
    encode_value,
    user_key,
)
from coatcheck.core.session_ops import AtomicOperations
from coatcheck.errors import SessionCommittedError, SessionDataError


class Session(AtomicOperations, MutableMapping[str, Any]):
    """The session an application reads and writes: a dict of JSON-serializable values.

    Writes are tracked per key. Values that are lists or dicts are snapshotted when first
    read, so ``session["cart"].append(item)`` is detected at commit without the
    ``modified = True`` ritual other frameworks need.
    """

    __slots__ = (
        "_auth_at",
        "_client",
        "_committed",
        "_consent",
        "_data",
        "_expires_at",
        "_handle",
        "_meta",
        "_now",
        "_ops",
        "_remember",
        "_removed",
        "_set",
        "_snapshots",
        "_tracked",
        "_user_id",
        "consent_policy",
        "data_view",
        "dead_token",
        "intents",
        "ops",
        "pending",
        "record",
        "removed_keys",
        "superseded",
        "via_bearer",
    )

    record: SessionRecord | None
    """The stored record this session was loaded from; None for a new session. Read-only
    (a plain attribute, as ``pending`` and ``intents``: commit reads them every time)."""
    intents: Intents
    """What the handler (and the engine, at load) asked of the coming commit. Read-only:
    the Session's intent methods give it a new value."""
    data_view: Mapping[str, Any]
    """The data as a read-only mapping that records nothing: for the engine, which encodes
    values without reading them "for change". An application reads the session itself,
    which notices in-place changes of what it hands out."""
    removed_keys: AbstractSet[str]
    """Keys a commit removes (read-only)."""
    ops: Sequence[Op]
    """The atomic operations (``incr``, ``append``, ``add_to_set``) a commit sends, in the
    order they were made (read-only). An operation after a write or a removal of its key
    is folded into that write instead, and the commit leaves out any whose key it writes
    whole (a list changed in place after the operation)."""

    def __init__(
        self,
        record: SessionRecord | None,
        now: float,
        client: ClientInfo | None = None,
        *,
        handle: str | None = None,
    ) -> None:
        # ``now`` and ``client`` may be passed by position: the engine builds a Session on
        # every request, and a class called with keywords pays for a keyword dict.
        # Built on every request: one test of ``record``, no work deferred to properties.
        self.record = record
        if record is not None:
            self._data: dict[str, Any] = dict(record.data)
            self._user_id = record.user_id
            self._remember = record.remember
            self._auth_at = record.auth_at
            self._handle: str | None = record.handle
            self._expires_at: float | None = record.expires_at
        else:
            self._data = {}
            self._user_id = None
            self._remember = False
            self._auth_at = None
            self._handle = handle
            self._expires_at = None
        self.data_view = self._data  # the same dict, typed read-only, read without a call
        self._set: set[str] = set()
        self._removed: set[str] = set()
        self.removed_keys = self._removed
        self._ops: list[Op] = []
        self.ops = self._ops
        self._snapshots: dict[str, str] = {}
        self._client = client
        self._now = now
        self._meta: dict[str, Any] | None = None
        self._consent: Consent | None = None
        self.consent_policy: ConsentPolicy = DEFAULT_POLICY
        """The consent categories and policy revision (the manager's, set at load)."""
        self.intents = NO_INTENTS
        self._tracked: list[tuple[str, dict[str, Any]]] | None = None
        self._committed = self.pending = self.dead_token = self.superseded = False
        """``pending``: False until anything happens that a commit must look at (a write,
        a removal, a list or dict read that may be changed in place, engine metadata, an
        intent). Read-only outside this class; a plain attribute, not a property, because
        the untouched request (most requests) reads it and nothing else. ``dead_token``:
        the client presented a token that opened nothing (unknown, expired, malformed,
        revoked), so unless something is stored its commit clears the cookie.
        ``superseded``: the token was moved away from moments ago by a concurrent login or
        ``regenerate()`` of the same client (``for_superseded_token``)."""
        self.via_bearer = False
        """Set by the edge that loaded the session: the token came in ``Authorization:
        Bearer`` (or the client asked for bearer transport), so new tokens go back in a
        header, never a cookie, and the CSRF check does not apply."""

    @classmethod
    def for_dead_token(cls, now: float, client: ClientInfo | None = None) -> Session:
        """A fresh session for a request whose token opened nothing (unknown, expired,
        malformed, revoked): unless the request stores something (then the new token
        replaces the dead one), its commit tells the client to drop the token."""
        session = cls(None, now, client)
        session.dead_token = True
        return session

    @classmethod
    def for_superseded_token(cls, now: float, client: ClientInfo | None = None) -> Session:
        """A fresh anonymous view for a request whose token a concurrent login or
        ``regenerate()`` replaced moments ago: the browser already holds the newer token,
        so the commit never clears the cookie, and a write is refused (SessionConflict)
        instead of being stored where the newer cookie will never look."""
        session = cls(None, now, client)
        session.superseded = True
        return session

    # -- mapping -----------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        if isinstance(value, (list, dict)):
            self._snapshot(key, value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """``Mapping.get`` without its try/except and second lookup: handlers call it on
        every request. Reads exactly as ``self[key]`` does."""
        data = self._data
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, (list, dict)):
            self._snapshot(key, value)
        return value

    def _snapshot(self, key: str, value: Any) -> None:
        """Remember how a mutable value read from the session looked, so commit can tell
        whether the handler changed it in place."""
        if not self._committed and key not in self._snapshots and key not in self._set:
            self._snapshots[key] = encode_value(key, value)
            self.pending = True

    def __setitem__(self, key: str, value: Any) -> None:
        if self._committed:
            self._check_open()
        if not isinstance(key, str):
            raise SessionDataError(f"session keys must be str, got {type(key).__name__}")
        self._data[key] = value
        self._set.add(key)
        self._removed.discard(key)
        self.pending = True
        if self._ops:
            self._drop_ops(key)

    def __delitem__(self, key: str) -> None:
        self._check_open()
        del self._data[key]
        self._set.discard(key)
        self._snapshots.pop(key, None)
        self._removed.add(key)
        self.pending = True
        if self._ops:
            self._drop_ops(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __repr__(self) -> str:
        return f"<Session handle={self._handle!r} user_id={self._user_id!r} keys={len(self)}>"

    # -- atomic operations -----------------------------------------------------------------
    # -- what the app may read -----------------------------------------------------------
    @property
    def handle(self) -> str | None:
        """Public identifier, safe for UIs and logs; None until the session is stored."""
        return self._handle

    @property
    def user_id(self) -> str | None:
        return self._user_id

    @property
    def is_new(self) -> bool:
        """True when no stored session backed this request."""
        return self.record is None

    @property
    def is_authenticated(self) -> bool:
        return self._user_id is not None

    @property
    def remember(self) -> bool:
        return self._remember

    @property
    def created_at(self) -> float | None:
        return self.record.created_at if self.record is not None else None

    @property
    def last_seen_at(self) -> float | None:
        return self.record.last_seen_at if self.record is not None else None

    @property
    def expires_at(self) -> float | None:
        """The deadline in force (as loaded, or as set by the last commit)."""
        return self._expires_at

    @property
    def absolute_at(self) -> float | None:
        """When the loaded session ends however busy it is (None until it is stored): the
        session service shows it, so a client can tell the idle deadline from the final one."""
        return self._record.absolute_at if self._record is not None else None

    @property
    def auth_at(self) -> float | None:
        """When the user last authenticated in this session (login time); None when the
        engine demands a new authentication."""
        if self.needs_reauthentication:
            return None
        return self._auth_at

    @property
    def meta(self) -> dict[str, Any]:
        """Engine metadata (assurance level, CSRF secret, ...): a copy; change it with
        ``set_meta``. Kept apart from the app's data, so no app key can collide with it."""
        if self._meta is not None:
            return dict(self._meta)
        return dict(self.record.meta) if self.record is not None else {}

    def meta_value(self, key: str, default: Any = None) -> Any:
        """One engine metadata value, without copying the metadata (``meta`` copies)."""
        meta = (
            self._meta
            if self._meta is not None
            else (self.record.meta if self.record is not None else None)
        )
        return meta.get(key, default) if meta is not None else default

    @property
    def consent(self) -> Consent:
        """The visitor's consent: ``allows("analytics")``, ``grant()``, ``deny()``,
        ``set()``, ``state``, ``needs_prompt`` (see ``coatcheck.core.consent``)."""
        consent = self._consent
        if consent is None:
            consent = self._consent = Consent(self, self.consent_policy, self._now)
        return consent

    @property
    def consent_changes(self) -> tuple[ConsentChange, ...]:
        """The consent changes this request made, for the engine to announce after the
        commit stored them."""
        consent = self._consent
        return tuple(consent.changes) if consent is not None else ()

    def note_meta(self, key: str, value: Any) -> None:
        """Set one engine metadata value that is written only if the commit writes the
        session anyway: no intent, so it starts no session by itself (a GPC refusal for a
        visitor who has none yet)."""
        self._check_open()
        if self._meta is None:
            self._meta = dict(self.record.meta) if self.record is not None else {}
        encode_value(f"meta:{key}", value)
        self._meta[key] = value

    def set_meta(self, key: str, value: Any) -> None:
        """Set one engine metadata value (JSON); written with the next commit.

        For extensions of the engine (CSRF, step-up levels), not for application data.
        """
        self._check_open()
        if self._meta is None:
            self._meta = dict(self.record.meta) if self.record is not None else {}
        encode_value(f"meta:{key}", value)
        self._meta[key] = value
        self._state(dataclasses.replace(self.intents, meta_changed=True))

    def csrf_token(self) -> str:
        """A CSRF token for a form field or header, masked afresh at every call (see
        ``coatcheck.security.csrf``). The first call creates the session's secret, so rendering a
        form starts a session for an anonymous visitor."""
        return csrf_secret.csrf_token(self)

    @property
    def modified(self) -> bool:
        """True when commit would write data (set, removed, or mutated in place)."""
        return bool(self._set or self._removed or self._ops or self._mutated_keys())

    # -- intents -----------------------------------------------------------------------
    def login(self, user_id: UserId, *, remember: bool = False, level: int = 1) -> None:
        """Authenticate the session as ``user_id``: a new token is issued at commit.

        ``level`` is the assurance level of this authentication (1: password; higher for
        stronger factors, as the app defines), checked by ``require_level``. The data
        survives (an anonymous cart stays), unless the session belonged to a different
        user, whose data must not leak to the new one. ``user_id`` None (or anything else
        that names nobody) raises ``InvalidUserId``.
        """
        self._check_open()
        uid = user_key(user_id)
        if self._user_id is not None and self._user_id != uid:
            self.clear()
        self._user_id = uid
        self._remember = remember
        self._auth_at = self._now
        if self._meta is None:
            self._meta = dict(self.record.meta) if self.record is not None else {}
        self._meta.pop(REAUTH_KEY, None)
        self._meta.pop(csrf_secret.SECRET_KEY, None)  # tokens rendered before login stop working
        self._meta[LEVEL_KEY] = int(level)
        self._state(
            dataclasses.replace(
                self.intents, login=True, logout=False, regenerate=True, meta_changed=True
            )
        )

    def set_remember(self, remember: bool) -> None:
        """Change whether the login stated in this request is remembered (a persistent
        cookie, no idle timeout) without stating the login again, which would reset the
        level and the CSRF secret it set. Only a login issues a persistent cookie, so
        without a pending ``login()`` this raises RuntimeError."""
        self._check_open()
        if not self.intents.login:
            raise RuntimeError("set_remember() changes a pending login(); use login(remember=)")
        self._remember = bool(remember)

    def reauthenticate(self, *, level: int | None = None) -> None:
        """Record a fresh authentication of the current user (step-up before a sensitive
        action): new token, new ``auth_at``, and ``level`` if given."""
        if self._user_id is None:
            raise RuntimeError("reauthenticate() needs a logged-in session; use login()")
        self.login(
            self._user_id,
            remember=self._remember,
            level=self.auth_level if level is None else level,
        )

    @property
    def auth_level(self) -> int:
        """Assurance level of the current authentication (0 when anonymous)."""
        if self._user_id is None:
            return 0
        meta = (
            self._meta
            if self._meta is not None
            else (self.record.meta if self.record is not None else {})
        )
        return int(meta.get(LEVEL_KEY, 1))

    @property
    def needs_reauthentication(self) -> bool:
        """True when the engine demands a new login (e.g. the client changed network)."""
        meta = (
            self._meta
            if self._meta is not None
            else (self.record.meta if self.record is not None else {})
        )
        return bool(meta.get(REAUTH_KEY))

    def logout(self) -> None:
        """End the session: its record is deleted and the cookie expired at commit.

        Data written after logout() starts a new anonymous session (a flash message, say).
        """
        self._check_open()
        self._data.clear()
        self._set.clear()
        self._removed.clear()
        self._snapshots.clear()
        self._ops.clear()
        self._user_id = None
        self._remember = False
        self._auth_at = None
        self._meta = {}
        if self._consent is not None:
            self._consent.changes.clear()  # the ended record's choice ends with it
        self._state(
            dataclasses.replace(
                self.intents,
                login=False,
                logout=True,
                regenerate=False,
                meta_changed=False,
                ended=True,
            )
        )

    def keep_alive(self) -> None:
        """Extend the idle deadline at this commit even within the touch interval, because
        the person asked for it ("stay signed in"). Nothing else changes: no data, no
        token, and a session that is not stored stays unstored, so a keep-alive can never
        start or revive a session."""
        self._check_open()
        self._state(dataclasses.replace(self.intents, keep_alive=True))

    def regenerate(self) -> None:
        """Issue a new token for the same session at commit (privilege change)."""
        self._check_open()
        self._state(dataclasses.replace(self.intents, regenerate=True))

    def track(self, name: str, properties: Mapping[str, Any] | None = None) -> None:
        """Record a custom analytics event (``"checkout.started"``) for this request.

        An intent like the others: nothing is written here and no commit is needed for it
        (``pending`` is untouched, so tracking never makes a request write the session).
        The edge's analytics recorder drains it after the response, under the same consent
        gate as page views; with analytics off it is simply dropped. ``properties`` must be
        JSON values (checked now, so a bad value fails in the handler that passed it).
        """
        if not isinstance(name, str) or not name or len(name) > 200:
            raise SessionDataError("an event name is a non-empty string of at most 200 chars")
        props = dict(properties or {})
        for key, value in props.items():
            encode_value(f"{name}.{key}", value)
        if self._tracked is None:
            self._tracked = []
        self._tracked.append((name, props))

    def drain_tracked(self) -> list[tuple[str, dict[str, Any]]]:
        """The custom events ``track`` recorded since the last drain, in order (engine side:
        the analytics recorder calls it once the response is out)."""
        tracked, self._tracked = self._tracked, None
        return tracked or []

    def _state(self, intents: Intents) -> None:
        self.intents = intents
        self.pending = True

    # -- engine side: what commit reads (and ``record``, ``intents``, ``pending``) -------
    @property
    def _record(self) -> SessionRecord | None:
        """``record``, by its old name (``coatcheck.integrations.django`` reads it)."""
        return self.record

    @property
    def client(self) -> ClientInfo | None:
        """The device of this request, as the edge described it (or None)."""
        return self._client

    def changed_keys(self) -> AbstractSet[str]:
        """Keys a commit writes: set by the handler, or changed in place since read."""
        if not self._snapshots:
            return self._set
        changed = set(self._set)
        changed.update(self._mutated_keys())
        return changed

    # -- engine side: what commit writes -------------------------------------------------
    def schedule_rotation(self) -> None:
        """The periodic token rotation is due: the commit renames the record (the old
        token keeps working for ``rotation_grace``). Called by the engine at load."""
        self._state(dataclasses.replace(self.intents, rotate=True))

    def stored(self, record: SessionRecord) -> None:
        """The commit stored ``record`` for this session (a new one, or the login's):
        its handle, deadline and login time are the session's from now on."""
        self._handle = record.handle
        self._expires_at = record.expires_at
        self._auth_at = record.auth_at

    def stored_deadline(self, expires_at: float | None) -> None:
        """The commit moved the session's deadline to ``expires_at``."""
        self._expires_at = expires_at

    def keep(self) -> None:
        """Store this session at commit even if it holds nothing.

        An empty anonymous session is normally never stored (nothing to keep, and no
        visitor can fill the store by calling). A backend contract that promises a key for
        an empty session, as Django's ``save()`` and ``create()`` do, states this instead;
        after ``logout()`` it makes the commit start a new, empty session in place of the
        ended one.
        """
        self._check_open()
        self._state(dataclasses.replace(self.intents, keep=True))

    def cap_deadline(self, at: float) -> None:
        """End this session no later than ``at`` (epoch seconds): the deadline the next
        commit writes is the earlier of the usual one (idle, never past the absolute one)
        and ``at``; an ``at`` not after the commit's time ends the session at that commit.
        A cap that brings the stored deadline forward is written even when nothing else
        changed; one past the stored deadline writes nothing by itself.

        It holds for that commit: a later commit works the deadline out afresh, so a
        per-session lifetime (Django's ``set_expiry()``, kept in the session's data) is
        stated again on every request that commits. Calling it again replaces ``at``.
        """
        self._check_open()
        intents, at = self.intents, float(at)
        if intents is NO_INTENTS:  # Django states it on every request: skip replace()
            self._state(Intents(deadline_cap=at))
        elif intents.deadline_cap != at:
            self._state(dataclasses.replace(intents, deadline_cap=at))
        else:
            self.pending = True

    @property
    def deadline_cap(self) -> float | None:
        """The ``at`` of ``cap_deadline()`` for the coming commit, or None."""
        return self.intents.deadline_cap

    # -- engine side ---------------------------------------------------------------------
    @property
    def committed(self) -> bool:
        """True once the session was committed (or closed): any later change raises
        ``SessionCommittedError`` instead of being dropped."""
        return self._committed

    def close(self) -> None:
        """No commit will follow (a WebSocket's session, a refused request): from now on
        a change raises ``SessionCommittedError`` instead of being lost silently."""
        self._committed = True

    def _mark_pending(self) -> None:
        self.pending = True

    def _check_open(self) -> None:
        if self._committed:
            raise SessionCommittedError(
                "the session was already committed (the response had started); "
                "change it before sending the response"
            )

    def _mutated_keys(self) -> list[str]:
        if not self._snapshots:
            return []
        changed = []
        for key, snapshot in self._snapshots.items():
            if key in self._set or key not in self._data:
                continue
            if encode_value(key, self._data[key]) != snapshot:
                changed.append(key)
        return changed
