"""``SessionStore``: Django's session backend contract, kept by a coatcheck Session inside.

Django's ``SessionMiddleware`` builds ``SessionStore(cookie_value)``, the app reads and
writes it like a dict, ``django.contrib.auth`` calls ``cycle_key()`` at login and on a
password change and ``flush()`` at logout, and the middleware calls ``save()`` and writes
``session_key`` into its cookie. Here:

- ``session_key`` is the coatcheck token; the store only ever sees its SHA-256.
- The dict Django sees is a coatcheck ``Session``: it tracks each changed key (in-place
  mutation of lists and dicts included), so ``save()`` writes a delta, not a snapshot.
- ``cycle_key()`` renames the record under a new token at once (as Django's backends
  do); a new ``_auth_user_id`` becomes ``login(uid)`` at save, another rename. Either
  way the old token stops working at the moment the new one exists.
- ``modified`` also turns true when coatcheck's policy wants a write Django would not ask
  for (an in-place mutation, or the periodic touch that extends the idle deadline), so
  read-only traffic keeps a session alive without writing on every request.
- Idle and absolute deadlines are coatcheck's, enforced on load. ``SESSION_COOKIE_AGE``
  and ``set_expiry()`` are Django's, read as Django reads them: they shape the cookie,
  and each commit states Django's expiry as a ``cap_deadline()``, so it can shorten the
  server-side deadline (never lengthen it) and a time gone by ends the session.
"""

from __future__ import annotations

from datetime import datetime
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError

from coatcheck.core import tokens
from coatcheck.core.client import ClientInfo
from coatcheck.core.session import Session
from coatcheck.engine.manager import SessionManager
from coatcheck.engine.results import CommitResult
from coatcheck.errors import SessionConflict
from coatcheck.integrations.django.conf import get_manager, migrate_from
from coatcheck.integrations.django.steps import Steps, call, run_async, run_sync
from coatcheck.stores.base import ClientSide

AUTH_USER_KEY = "_auth_user_id"
"""``django.contrib.auth.SESSION_KEY``: whose session this is. Mirrored into the record's
``user_id`` so a user's sessions can be listed and revoked (the record's index)."""

AUTH_KEYS = (AUTH_USER_KEY, "_auth_user_backend", "_auth_user_hash")
"""Everything ``django.contrib.auth.login`` writes: kept together across a user switch."""

EXPIRY_KEY = "_session_expiry"
"""Where Django's ``set_expiry()`` keeps its value, in the session's own data."""

MAX_COOKIE = 4096
"""A value longer than a browser keeps cannot be one of ours (client-side stores)."""


def _client_side() -> bool:
    """True when the store keeps sessions in the cookie itself (``cookie://``): the token
    is then the sealed session, and nothing on the server is filed under it."""
    return isinstance(get_manager().store, ClientSide)


def _is_ours(key: str) -> bool:
    """Could ``key`` be a value coatcheck issued? Checked before any store call."""
    if _client_side():
        return tokens.TOKEN_LENGTH < len(key) <= MAX_COOKIE
    return tokens.is_well_formed(key)


def _django_deadline(session: Session, now: float) -> float:
    """The latest the server may keep ``session`` by Django's word, as of ``now``:
    ``set_expiry()``'s value (seconds without a save, or a date), else
    ``SESSION_COOKIE_AGE`` seconds. ``set_expiry(0)`` (at browser close) is
    ``SESSION_COOKIE_AGE`` on the server, as in Django's own backends. A date is compared
    with the manager's clock, so a test clock must agree with Django's."""
    expiry = session.get(EXPIRY_KEY)
    try:
        if isinstance(expiry, str):
            return datetime.fromisoformat(expiry).timestamp()
        if isinstance(expiry, int | float) and not isinstance(expiry, bool) and expiry:
            return now + float(expiry)
    except (ValueError, OverflowError, OSError):
        pass  # not a value Django writes: the default below
    return now + float(settings.SESSION_COOKIE_AGE)


def _old_engine_session(key: str) -> SessionBase:
    """The session of ``COATCHECK_MIGRATE_FROM``'s engine under ``key``."""
    engine = migrate_from()
    assert engine is not None  # only then do such keys pass _validate_session_key
    session: SessionBase = import_module(engine).SessionStore(key)
    return session


class SessionStore(SessionBase):
    """``SESSION_ENGINE = "coatcheck.django"`` points Django here."""

    _session_cache: Session

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self.client: ClientInfo | None = None
        """Set by ``coatcheck.django.SessionMiddleware`` so the record keeps the device."""
        self._legacy: SessionBase | None = None
        """An old engine's session being moved into coatcheck (deleted once saved here)."""
        self.ended = False
        """``flush()`` ended a stored session (a logout): the response clears site data."""
        self._saved_key: str | None = None
        """The key this object's last commit left the session under. Finding nothing
        there at the next access means the session ended meanwhile (a logout in another
        request), and the next save() must say so rather than store a new one."""
        self._interrupted = False
        self.stored_deadline: float | None = None
        """The deadline this request's commit left in force (None: nothing stored)."""
        self.stale_token = False
        """The session was reached through a token a concurrent request rotated out (its
        grace window): the response must not send that token back as the cookie, or it
        would replace the new one and count as stolen once the window closes. Also set
        for a token a concurrent login replaced (``Session.superseded``): no cookie
        deletion either, which would delete the newer login cookie."""

    # -- what Django reads -------------------------------------------------------------
    def _validate_session_key(self, key: str | None) -> bool:
        """Only minted tokens count (anything else never reaches the store), plus the old
        engine's keys while a migration is configured."""
        if not key:
            return False
        if _is_ours(key):
            return True
        return migrate_from() is not None and len(key) >= 8

    @property
    def modified(self) -> bool:
        """Django's flag, or coatcheck's policy asking for a write (mutation, touch)."""
        if self._modified:
            return True
        session: Session | None = self.__dict__.get("_session_cache")
        if session is None or session.committed:
            return False
        if session.is_new:  # engine metadata to keep (a consent choice) starts a session
            return session.intents.meta_changed
        manager = get_manager()
        session.cap_deadline(_django_deadline(session, manager.clock()))
        return manager.wants_commit(session)

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = value

    def is_empty(self) -> bool:
        """Django's test (no key, no data), except that a new session with engine metadata
        to keep (a consent choice) is not empty: Django's middleware must save it."""
        session: Session | None = self.__dict__.get("_session_cache")
        if session is not None and not session.committed and session.intents.meta_changed:
            return False
        return bool(super().is_empty())

    @property
    def handle(self) -> str | None:
        """The session's public handle (safe to show and log); None until it is stored."""
        return self._get_session().handle

    @property
    def expires_at(self) -> float | None:
        """The stored session's deadline in force, as far as this request knows it without
        a store read: the loaded session's, or the one its save left. None when no stored
        session backs the request, or when the request never opened the session."""
        session: Session | None = self.__dict__.get("_session_cache")
        if session is not None:
            return None if session.is_new else session.expires_at
        return self.stored_deadline

    async def ahandle(self) -> str | None:
        """``handle`` for async code (loading the session may need the store)."""
        return (await self._aget_session()).handle

    def _get_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            return self._current_sync()

    async def _aget_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            return await run_async(self._current())

    _session = property(_get_session)

    @property
    def core(self) -> Session:
        """The coatcheck ``Session`` inside (loaded on first use), for the code every edge
        shares (the keep-alive of ``coatcheck.http.browser``, say)."""
        return self._get_session()

    def incr(self, key: str, by: int = 1) -> int:
        """Add ``by`` to the integer under ``key`` in the store (see ``coatcheck.Session``):
        concurrent increments all count. The new value."""
        value = self.core.incr(key, by)
        self.modified = True  # as Django's __setitem__ does: a new session is saved too
        return value

    def append(self, key: str, value: Any) -> None:
        """Append ``value`` to the list under ``key`` in the store: concurrent appends (a
        cart's additions from two tabs) all land."""
        self.core.append(key, value)
        self.modified = True

    def add_to_set(self, key: str, value: Any) -> None:
        """``append``, unless the stored list already holds ``value``."""
        self.core.add_to_set(key, value)
        self.modified = True

    def clear(self) -> None:
        # Django swaps in an empty dict; removing the keys instead makes them a delta.
        self._get_session().clear()
        self.accessed = True
        self.modified = True

    # -- Django's backend contract, each written once below ---------------------------
    def load(self) -> dict[str, Any]:
        return run_sync(self._load())

    async def aload(self) -> dict[str, Any]:
        return await run_async(self._load())

    def exists(self, session_key: str | None) -> bool:
        return run_sync(self._exists(session_key))

    async def aexists(self, session_key: str | None) -> bool:
        return await run_async(self._exists(session_key))

    def create(self) -> None:
        run_sync(self._create())

    async def acreate(self) -> None:
        await run_async(self._create())

    def save(self, must_create: bool = False) -> None:
        run_sync(self._create() if must_create else self._save())

    async def asave(self, must_create: bool = False) -> None:
        await run_async(self._create() if must_create else self._save())

    def delete(self, session_key: str | None = None) -> None:
        run_sync(self._delete(session_key))

    async def adelete(self, session_key: str | None = None) -> None:
        await run_async(self._delete(session_key))

    def cycle_key(self) -> None:
        run_sync(self._cycle_key())

    async def acycle_key(self) -> None:
        await run_async(self._cycle_key())

    def flush(self) -> None:
        run_sync(self._flush())

    async def aflush(self) -> None:
        await run_async(self._flush())

    @classmethod
    def clear_expired(cls) -> None:
        """``manage.py clearsessions``: the store's batched purge of expired records."""
        get_manager().purge_expired_sync()

    @classmethod
    async def aclear_expired(cls) -> None:
        await get_manager().purge_expired()

    # -- procedures --------------------------------------------------------------------
    def _current(self) -> Steps[Session]:
        """The session this request works on, loaded once (at most one store read)."""
        session: Session | None = self.__dict__.get("_session_cache")
        if session is None:
            key = self.session_key
            if key is not None and not _is_ours(key):
                session = self._session_cache = yield from self._migrate(key)
            else:
                manager = get_manager()
                loaded = yield call(manager.load_sync, manager.load, key, self.client)
                session = self._opened(key, loaded)
        return session

    def _current_sync(self) -> Session:
        """``_current`` on the sync path: a key of ours (or none), the case of nearly
        every request, is one manager call, without the steps around it."""
        key = self.session_key
        if key is not None and not _is_ours(key):
            return run_sync(self._current())
        return self._opened(key, get_manager().load_sync(key, self.client))

    def _opened(self, key: str | None, session: Session) -> Session:
        """Keep ``session``, the manager's answer for ``key``, as this request's."""
        if session.is_new:
            # Unknown or expired: never adopt the client's value (strict mode).
            self._session_key = None
            # A token a concurrent login just replaced: the browser holds the new
            # one, which Django's "empty session" cookie deletion would remove.
            self.stale_token = session.superseded
            if key is not None and key == self._saved_key:
                self._interrupted = True
                self._saved_key = None
        self._session_cache = session
        return session

    def _load(self) -> Steps[dict[str, Any]]:
        """Django's ``load()``: what the store holds under the key now, never this
        object's unsaved changes (a view's writes on a 5xx response are not saved, and
        ``load()`` says so). An unknown or expired key is forgotten, as Django's are."""
        key = self.session_key
        if key is None:
            return {}
        if not _is_ours(key):
            legacy = _old_engine_session(key)
            data: dict[str, Any] = yield call(legacy.load, legacy.aload)
            return data
        manager = get_manager()
        session: Session = yield call(manager.load_sync, manager.load, key, self.client)
        if session.is_new:
            self._session_key = None
        return dict(session)

    def _migrate(self, key: str) -> Steps[Session]:
        """Read a session of the old engine once; its data becomes a new coatcheck session
        at this request's save, and the old one is deleted only after that succeeded."""
        manager = get_manager()
        legacy = _old_engine_session(key)
        data: dict[str, Any] = yield call(legacy.load, legacy.aload)
        session: Session = yield call(manager.load_sync, manager.load, None, self.client)
        self._session_key = None
        if data:
            session.update(data)
            self._legacy = legacy
            self.modified = True  # so SessionMiddleware saves, and sends the new token
        return session

    def _exists(self, session_key: str | None) -> Steps[bool]:
        """Django's ``exists(key)``: None (no key yet) or a value that was never one of
        ours names no session, and costs no store call."""
        if not session_key or not _is_ours(session_key):
            return False
        manager = get_manager()
        live: bool = yield call(manager.exists_sync, manager.exists, session_key)
        return live

    def _save(self) -> Steps[None]:
        session = yield from self._current()
        if self._interrupted:
            # Saved here, then ended elsewhere: never resurrect it under a new key.
            self._interrupted = False
            raise UpdateError("the session was deleted before the request completed")
        ending = self._follow_auth(session)
        yield from self._commit(session, ending)

    def _create(self) -> Steps[None]:
        """Django's create(): the current data (if any) under a brand-new key, stored now.
        The old record, if any, is left alone, as Django's contract says."""
        current: Session | None = self.__dict__.get("_session_cache")
        data = dict(current) if current is not None else {}
        manager = get_manager()
        session: Session = yield call(manager.load_sync, manager.load, None, self.client)
        session.update(data)
        self._session_key = None
        self._session_cache = session
        self._follow_auth(session)
        yield from self._commit(session, ending=False)

    def _commit(self, session: Session, ending: bool) -> Steps[None]:
        manager = get_manager()
        if session.is_new or ending:
            # coatcheck stores nothing for an empty anonymous session, but Django's save()
            # and create() promise a key even then (its test Client relies on it), and an
            # emptied session whose user was dropped stays under a (new) key.
            session.keep()
        now = manager.clock()
        cap = _django_deadline(session, now)
        session.cap_deadline(cap)  # shortens the server's deadline; a passed one ends it
        result: CommitResult = yield call(_commit_sync, _commit, manager, session)
        # A committed Session is frozen; the next access reads the stored state afresh.
        del self._session_cache
        stored = session.handle is not None and not result.clear
        self.stored_deadline = session.expires_at if stored else None
        # ``modified`` stays as it was, and turns True with a new key, as in Django's
        # backends: a view's own save() (after auth.login, say) leaves it to the
        # middleware to send the key, and that save finds nothing more to write.
        if result.clear:
            self._session_key = self._saved_key = None
            if not result.ended and cap > now:
                # Revoked or purged while this request ran: Django's word for it.
                raise UpdateError("the session was deleted before the request completed")
            return  # set_expiry() to a time gone by: ended, as asked
        if result.token is not None:
            self._session_key = result.token
            self._modified = True
        elif self._session_key is not None and manager.through_old_token(
            session, self._session_key
        ):
            self.stale_token = True
        self._saved_key = self._session_key
        legacy = self._legacy
        if legacy is not None:
            yield call(legacy.delete, legacy.adelete)
            self._legacy = None

    def _delete(self, session_key: str | None) -> Steps[None]:
        key = self.session_key if session_key is None else session_key
        if key is None or not _is_ours(key):
            return
        manager = get_manager()
        yield call(manager.end_sync, manager.end, key)  # a cookie has none; flush() revokes it

    def _cycle_key(self) -> Steps[None]:
        """Django's ``cycle_key()`` (``auth.login``, ``update_session_auth_hash``): the
        same data under a new key, now. One atomic rename, so the old key stops working
        at the very moment the new one exists, and ``session_key`` is the new key at once.

        A session not stored yet has no old key to end: it gets its key when it is
        stored (by the middleware's save, or the view's), and no write happens here.
        """
        session = yield from self._current()
        self.modified = True
        if session.is_new:
            return
        session.regenerate()
        try:
            yield from self._commit(session, self._follow_auth(session))
        except UpdateError:
            # Ended meanwhile (a logout elsewhere): nothing to move, and nothing of it
            # may come back; the request goes on with a fresh session (a login still can).
            manager = get_manager()
            self._session_cache = yield call(manager.load_sync, manager.load, None, self.client)

    def _flush(self) -> Steps[None]:
        """Logout: the record is deleted now, and the request goes on with a fresh,
        empty anonymous session (data written afterwards starts a new one)."""
        session = yield from self._current()
        manager = get_manager()
        if not session.is_new:
            session.logout()
            yield call(manager.commit_sync, manager.commit, session)
            self.ended = True
        legacy = self._legacy
        if legacy is not None:
            yield call(legacy.delete, legacy.adelete)
            self._legacy = None
        self._session_key = None
        self._session_cache = yield call(manager.load_sync, manager.load, None, self.client)
        self.accessed = True
        self.modified = True

    def _follow_auth(self, session: Session) -> bool:
        """Mirror django.contrib.auth's user key into coatcheck's login state.

        A new ``_auth_user_id`` is a login (new token, auth time, the user's index); a
        vanished one while coatcheck still files the session under a user ends that
        session and carries the remaining data into a new anonymous one. Returns True in
        that second case, when the old record is meant to go.
        """
        user_id = session.get(AUTH_USER_KEY)
        if user_id is not None:
            uid = str(user_id)
            if uid != session.user_id:
                auth = {k: session[k] for k in AUTH_KEYS if k in session}
                session.login(uid)  # clears the data only if another user owned it
                for name, value in auth.items():
                    if name not in session:
                        session[name] = value
            return False
        if session.user_id is not None:
            data = dict(session)
            session.logout()
            session.update(data)
            return True
        return False


def _commit_sync(manager: SessionManager, session: Session) -> CommitResult:
    """``manager.commit_sync``, with a write lost to a revocation as Django's
    ``UpdateError`` (its middleware answers it); one lost to a concurrent login stays
    SessionConflict, which coatcheck's middleware answers 409."""
    try:
        return manager.commit_sync(session)
    except SessionConflict as exc:
        if exc.reason != "gone":
            raise
        raise UpdateError("the session was deleted before the request completed") from exc


async def _commit(manager: SessionManager, session: Session) -> CommitResult:
    """``manager.commit``, as ``_commit_sync``."""
    try:
        return await manager.commit(session)
    except SessionConflict as exc:
        if exc.reason != "gone":
            raise
        raise UpdateError("the session was deleted before the request completed") from exc
