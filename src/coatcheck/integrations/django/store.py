"""``SessionStore``: Django's session backend contract, kept by a coatcheck Session inside.

Django's ``SessionMiddleware`` builds ``SessionStore(cookie_value)``, the app reads and
writes it like a dict, ``django.contrib.auth`` calls ``cycle_key()`` at login and on a
password change and ``flush()`` at logout, and the middleware calls ``save()`` and writes
``session_key`` into its cookie. Here:

- ``session_key`` is the coatcheck token; the store only ever sees its SHA-256.
- The dict Django sees is a coatcheck ``Session``: it tracks each changed key (in-place
  mutation of lists and dicts included), so ``save()`` writes a delta, not a snapshot.
- ``cycle_key()`` states ``regenerate()``; a new ``_auth_user_id`` becomes ``login(uid)``
  at save. Either way one atomic rename issues the new token, and only after ``save()``
  does ``session_key`` hold it (Django's middleware reads it after saving).
- ``modified`` also turns true when coatcheck's policy wants a write Django would not ask
  for (an in-place mutation, or the periodic touch that extends the idle deadline), so
  read-only traffic keeps a session alive without writing on every request.
- Idle and absolute deadlines are coatcheck's, enforced on load; Django's cookie age only
  shapes the cookie (and defaults to coatcheck's absolute timeout).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Protocol, cast

from django.contrib.sessions.backends.base import SessionBase, UpdateError

from coatcheck.core import events, policy, tokens
from coatcheck.core.client import ClientInfo
from coatcheck.core.record import SessionRecord
from coatcheck.core.session import Session
from coatcheck.engine.results import CommitResult
from coatcheck.integrations.django.conf import get_manager, migrate_from
from coatcheck.integrations.django.steps import Steps, call, run_async, run_sync
from coatcheck.stores.base import ClientSide, Store

AUTH_USER_KEY = "_auth_user_id"
"""``django.contrib.auth.SESSION_KEY``: whose session this is. Mirrored into the record's
``user_id`` so a user's sessions can be listed and revoked (the record's index)."""

AUTH_KEYS = (AUTH_USER_KEY, "_auth_user_backend", "_auth_user_hash")
"""Everything ``django.contrib.auth.login`` writes: kept together across a user switch."""

MAX_COOKIE = 4096
"""A value longer than a browser keeps cannot be one of ours (client-side stores)."""


class _Sealer(Protocol):
    """What a client-side store (``CookieStore``) offers: the session *is* the token."""

    def seal(self, record: SessionRecord) -> str: ...


def _client_side() -> bool:
    """True when the store keeps sessions in the cookie itself (``cookie://``): the token
    is then the sealed session, and nothing on the server is filed under it."""
    return isinstance(get_manager().store, ClientSide)


def _is_ours(key: str) -> bool:
    """Could ``key`` be a value coatcheck issued? Checked before any store call."""
    if _client_side():
        return tokens.TOKEN_LENGTH < len(key) <= MAX_COOKIE
    return tokens.is_well_formed(key)


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
        self.stale_token = False
        """The session was reached through a token a concurrent request rotated out (its
        grace window): the response must not send that token back as the cookie, or it
        would replace the new one and count as stolen once the window closes."""

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
        if session is None or session.is_new or session.committed:
            return False
        manager = get_manager()
        plan = policy.plan_commit(session, manager.config, manager.clock())
        return plan.action is not policy.Action.NOTHING

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = value

    @property
    def handle(self) -> str | None:
        """The session's public handle (safe to show and log); None until it is stored."""
        return self._get_session().handle

    async def ahandle(self) -> str | None:
        """``handle`` for async code (loading the session may need the store)."""
        return (await self._aget_session()).handle

    def get_session_cookie_age(self) -> int:
        """The cookie need not outlive the longest a coatcheck session can last."""
        return int(get_manager().config.absolute_timeout)

    def _get_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            return run_sync(self._current())

    async def _aget_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            return await run_async(self._current())

    _session = property(_get_session)

    def clear(self) -> None:
        # Django swaps in an empty dict; removing the keys instead makes them a delta.
        self._get_session().clear()
        self.accessed = True
        self.modified = True

    # -- Django's backend contract, each written once below ---------------------------
    def load(self) -> dict[str, Any]:
        return dict(self._get_session())

    async def aload(self) -> dict[str, Any]:
        return dict(await self._aget_session())

    def exists(self, session_key: str) -> bool:
        return run_sync(self._exists(session_key))

    async def aexists(self, session_key: str) -> bool:
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
                session = yield from self._migrate(key)
            else:
                manager = get_manager()
                session = yield call(manager.load_sync, manager.load, key, self.client)
                if session.is_new:
                    # Unknown or expired: never adopt the client's value (strict mode).
                    self._session_key = None
            self._session_cache = session
        return session

    def _migrate(self, key: str) -> Steps[Session]:
        """Read a session of the old engine once; its data becomes a new coatcheck session
        at this request's save, and the old one is deleted only after that succeeded."""
        engine = migrate_from()
        assert engine is not None  # only such keys pass _validate_session_key
        manager = get_manager()
        legacy: SessionBase = import_module(engine).SessionStore(key)
        data: dict[str, Any] = yield call(legacy.load, legacy.aload)
        session: Session = yield call(manager.load_sync, manager.load, None, self.client)
        self._session_key = None
        if data:
            session.update(data)
            self._legacy = legacy
            self.modified = True  # so SessionMiddleware saves, and sends the new token
        return session

    def _exists(self, session_key: str) -> Steps[bool]:
        if not _is_ours(session_key):
            return False
        manager = get_manager()
        if _client_side():
            session: Session = yield call(manager.load_sync, manager.load, session_key, None)
            return not session.is_new
        store = cast(Store, manager.store)
        record = yield call(store.get_sync, store.get, tokens.storage_key(session_key))
        return policy.check(record, manager.clock()) is policy.Verdict.VALID

    def _save(self) -> Steps[None]:
        session = yield from self._current()
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
        if session.is_new and not session and not session.is_authenticated:
            # coatcheck stores nothing for an empty anonymous session, but Django's save()
            # and create() promise a key even then (its test Client relies on it).
            yield from self._store_empty(session)
            return
        result: CommitResult = yield call(manager.commit_sync, manager.commit, session)
        # A committed Session is frozen; the next access reads the stored state afresh.
        del self._session_cache
        self._modified = False
        if result.token is not None:
            self._session_key = result.token
        elif (
            not result.clear
            and session._record is not None
            and self._session_key is not None
            and not _client_side()
            and session._record.key != tokens.storage_key(self._session_key)
        ):
            self.stale_token = True
        elif result.clear:
            self._session_key = None
            if not ending:
                # Revoked or purged while this request ran: Django's word for it.
                raise UpdateError("the session was deleted before the request completed")
            # The data was emptied and the user dropped: Django keeps such a session.
            fresh: Session = yield call(manager.load_sync, manager.load, None, self.client)
            yield from self._store_empty(fresh)
        legacy = self._legacy
        if legacy is not None:
            yield call(legacy.delete, legacy.adelete)
            self._legacy = None

    def _store_empty(self, session: Session) -> Steps[None]:
        manager = get_manager()
        now = manager.clock()
        token = tokens.new_token()
        record = policy.new_record(session, manager.config, now, tokens.new_handle())
        if _client_side():
            token = cast(_Sealer, manager.store).seal(record)
        else:
            record.key = tokens.storage_key(token)
            store = cast(Store, manager.store)
            yield call(store.create_sync, store.create, record)
        manager.emit(events.CREATED, handle=record.handle, user_id=record.user_id)
        self._session_key = token
        self._session_cache = Session(record, now=now, client=self.client)
        self._modified = False

    def _delete(self, session_key: str | None) -> Steps[None]:
        key = self.session_key if session_key is None else session_key
        if key is None or not _is_ours(key) or _client_side():
            return  # a cookie session has no record to delete; flush() revokes it
        store = cast(Store, get_manager().store)
        yield call(store.delete_sync, store.delete, tokens.storage_key(key))

    def _cycle_key(self) -> Steps[None]:
        """A new token at save, same data: one atomic rename, so the old token dies at the
        very moment the new one exists (login, password change)."""
        session = yield from self._current()
        session.regenerate()
        self.modified = True

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
