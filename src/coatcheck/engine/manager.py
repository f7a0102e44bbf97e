"""SessionManager: the one place that turns policy decisions into store calls and events.

Each procedure is written once as a generator of store operations (see ``operations``);
the async methods (``load``, ``commit``, ...) and their ``*_sync`` twins only choose the
driver. Nothing here decides what is valid or what a commit must do: that is ``policy``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from coatcheck.core import events as ev
from coatcheck.core import policy, tokens
from coatcheck.core.client import UA_HASH_KEY, ClientInfo
from coatcheck.core.config import SessionConfig
from coatcheck.core.consent import ConsentPolicy
from coatcheck.core.events import EventSink
from coatcheck.core.policy import Action, Plan
from coatcheck.core.record import (
    REAUTH_KEY,
    ROTATED_AT_KEY,
    ROTATED_TO_KEY,
    SessionRecord,
)
from coatcheck.core.session import Session
from coatcheck.engine.accounts import UserSessions
from coatcheck.engine.clientside import ClientSideSessions
from coatcheck.engine.consent import ConsentRecall, announce, client_rules, logged_in, ready
from coatcheck.engine.limits import SessionLimits
from coatcheck.engine.operations import (
    Apply,
    Create,
    Delete,
    DeleteHandle,
    Get,
    GetByHandle,
    Mark,
    Rename,
    Steps,
    run_async,
    run_sync,
)
from coatcheck.engine.results import CLEARED, NO_CHANGE, CommitResult, SessionInfo
from coatcheck.errors import SessionConflict, Throttled
from coatcheck.security.throttle import UnknownTokenThrottle
from coatcheck.stores.base import (
    AnyStore,
    ClientSide,
    HandleIndex,
    Lockable,
    Store,
    UserIndex,
)

__all__ = ["NO_CHANGE", "CommitResult", "SessionInfo", "SessionManager"]
"""CommitResult and SessionInfo live in ``results``; they stay importable from here."""

Clock = Callable[[], float]


_NOTHING, _TOUCH, _UPDATE = Action.NOTHING, Action.TOUCH, Action.UPDATE
_VALID = policy.Verdict.VALID
"""Enum members read on every request, as module constants: on Python 3.11 reading an
attribute of an Enum class takes ``EnumType.__getattr__``'s slow lookup every time."""


class SessionManager(SessionLimits, UserSessions):
    """Loads and commits sessions over one store, under one configuration.

    ``clock`` returns seconds since the epoch (``time.time`` by default); inject a fake
    one to test expiry without sleeping. ``events`` are sinks called with every lifecycle
    event.

    ``store`` meets the core contract of ``coatcheck.stores.base`` (or is ``ClientSide``);
    what more the manager needs of it, it asks for by type (``Capability.of``). A setting whose
    ordinary requests need a capability (``rotation_interval``: ``HandleIndex``;
    ``max_sessions_per_user``: ``UserIndex``) is refused here, when the app starts, with
    MissingCapability; a method that needs one (``list_user_sessions``, ``revoke``,
    ``is_active``, ``revoke_user``, ``purge_expired``) is refused when it is called, and
    everything else still works over that store.
    """

    def __init__(
        self,
        store: AnyStore,
        config: SessionConfig | None = None,
        clock: Clock | None = None,
        events: Iterable[EventSink] = (),
    ) -> None:
        self.store = store
        self.config = config or SessionConfig()
        self.clock: Clock = clock or time.time
        self.sinks: list[EventSink] = list(events)
        self.consent_policy = ConsentPolicy.of(self.config)
        """The consent categories and revision every session of this manager asks about."""
        self.client_rules = client_rules(self.config)
        """What is kept of a client (``SessionConfig.ip_truncation``, the user agent's
        reduction and keyed hash), given to each request's ClientInfo at load."""
        self.consent_recall: ConsentRecall | None = None
        """Asked at each login for the user's latest recorded consent (None: no ledger)."""
        limit = self.config.unknown_token_limit
        self._throttle = (
            UnknownTokenThrottle(limit, self.config.unknown_token_window)
            if limit is not None
            else None
        )
        # How a session travels, chosen once here rather than tested per request: by
        # default the client holds a token naming a record in ``store`` (``_records``, the
        # procedures below). A ``ClientSide`` store (CookieStore) carries the session itself
        # in the cookie; its procedures (``ClientSideSessions``) send their few store
        # operations to its revocation store instead, and ``_records`` is None.
        self._client_side: ClientSideSessions | None = None
        self._records: Store | None = None
        if isinstance(store, ClientSide):
            self._client_side = ClientSideSessions(self, store)
        else:
            self._records = store
        if self.config.max_sessions_per_user is not None:
            UserIndex.of(store, "max_sessions_per_user")
        if self.config.rotation_interval is not None and self._records is not None:
            HandleIndex.of(store, "rotation_interval")
        if self.config.lock_sessions:  # (the locks themselves: ``engine.locking``)
            Lockable.of(store, "lock_sessions")

    # -- procedures (written once, driven twice) ---------------------------------------
    # A load is one read and a commit at most one write on almost every request, so each
    # procedure is cut where that one store operation happens: the decisions before and
    # after it are plain methods both drivers call (``load`` and ``load_sync``, ``commit``
    # and ``commit_sync``), and only the rare continuations that need more operations
    # (revocation, rotation markers, logins, session limits) are generators of steps run
    # by ``run_async`` / ``run_sync``. The common request thus pays for no generator, no
    # operation object and no extra coroutine, and each rule still exists once.

    def _load_key(self, token: str | None, client: ClientInfo | None, now: float) -> str | None:
        """The storage key a load reads, or None when no read is worth making (no token,
        or a malformed one). A malformed token is a miss of the unknown-token throttle
        (Throttled for a client over its limit); a well-formed one is not looked at by the
        throttle before the store said whether it opens a session."""
        if token is None:
            return None
        key = tokens.checked_storage_key(token)
        if key is None:
            self.emit(ev.REJECTED, reason="malformed")
            self._missed(token, client, now)
        return key

    def _missed(self, token: str, client: ClientInfo | None, now: float) -> None:
        """A token that opens nothing (unknown or malformed; never a valid or an expired
        one): counted against the client's address, or Throttled when it is over the
        limit. Without an address (a Unix socket) or a throttle, nothing to count."""
        throttle = self._throttle
        address = client.address if client is not None else None
        if throttle is not None and address is not None:
            wait = throttle.unknown(address, now, token)
            if wait is not None:
                raise Throttled(wait)

    def _loaded(
        self, record: SessionRecord | None, now: float, client: ClientInfo | None
    ) -> Session | None:
        """The session of the common load: a live record, no rotation marker, the same
        client as before. None for anything else, which ``_load_found`` decides."""
        if (
            record is None
            or ROTATED_TO_KEY in record.meta
            or policy.check(record, now) is not _VALID
            or (
                client is not None
                and client.changes(record.user_agent, record.ip, record.meta.get(UA_HASH_KEY))
            )
        ):
            return None
        return self._admitted(record, now, client)

    def _load_found(
        self, key: str, record: SessionRecord | None, now: float, client: ClientInfo | None
    ) -> Steps[Session]:
        """What a load makes of the record it read under ``key``, in every case."""
        if record is not None and ROTATED_TO_KEY in record.meta:
            return (yield from self._load_rotated(record, now, client))
        verdict = policy.check(record, now)
        if verdict is policy.Verdict.VALID:
            assert record is not None
            return (yield from self._admit(record, now, client))
        if record is not None:
            self.emit(
                ev.EXPIRED, handle=record.handle, user_id=record.user_id, reason=verdict.value
            )
        elif self.config.rotation_grace > 0 and policy.superseded(
            (yield Get(tokens.superseded_key(key))), now
        ):
            # A concurrent login or regenerate() of this client moved the session away
            # from this token moments ago: an anonymous view, and the cookie left alone.
            self.emit(ev.REJECTED, reason="superseded")
            return Session.for_superseded_token(now, client)
        else:
            self.emit(ev.REJECTED, reason="unknown")
            self._missed(key, client, now)
        return Session.for_dead_token(now, client)

    def _admitted(self, record: SessionRecord, now: float, client: ClientInfo | None) -> Session:
        """A valid record becomes this request's session, with a periodic rotation
        scheduled when due."""
        session = Session(record, now, client)
        config = self.config
        if config.rotation_interval is not None and policy.rotation_due(record, now, config):
            session.schedule_rotation()
        return session

    def _admit(
        self, record: SessionRecord, now: float, client: ClientInfo | None
    ) -> Steps[Session]:
        """A valid record becomes this request's session, after the client check."""
        changed = (
            client.changes(record.user_agent, record.ip, record.meta.get(UA_HASH_KEY))
            if client is not None
            else ""
        )
        if changed:
            action = self.config.client_change_action
            self.emit(
                ev.CLIENT_CHANGED,
                handle=record.handle,
                user_id=record.user_id,
                changed=changed,
                action=action,
            )
            if action == "end":
                yield Delete(record.key)
                self.emit(ev.REVOKED, handle=record.handle, user_id=record.user_id)
                return Session.for_dead_token(now, client)
            if action == "reauthenticate" and record.user_id is not None:
                session = Session(record, now, client)
                session.set_meta(REAUTH_KEY, True)
                return session
        return self._admitted(record, now, client)

    def _load_rotated(
        self, marker: SessionRecord, now: float, client: ClientInfo | None
    ) -> Steps[Session]:
        """A rotated-out token came back: inside the grace window it still opens the live
        session (a concurrent request of the same client); after it, someone kept a copy,
        so the whole session is revoked (refresh-token reuse detection)."""
        handle = str(marker.meta[ROTATED_TO_KEY])
        rotated_at = float(marker.meta[ROTATED_AT_KEY])
        if now - rotated_at <= self.config.rotation_grace:
            live = yield GetByHandle(handle)
            if live is not None and policy.check(live, now) is policy.Verdict.VALID:
                return (yield from self._admit(live, now, client))
            return Session.for_dead_token(now, client)
        ended = yield DeleteHandle(handle)
        yield Delete(marker.key)
        self.emit(
            ev.THEFT_SUSPECTED,
            handle=handle,
            user_id=ended.user_id if ended is not None else None,
            rotated_at=rotated_at,
        )
        return Session.for_dead_token(now, client)

    def _applied(self, session: Session, plan: Plan) -> CommitResult:
        """The outcome of a TOUCH or UPDATE once its ``Apply`` took place."""
        assert plan.patch is not None
        expires_at = plan.patch.fields.get("expires_at")
        if expires_at is not None:
            session.stored_deadline(expires_at)
        return NO_CHANGE

    def _lost(
        self, session: Session, plan: Plan, now: float, left_marker: bool = False
    ) -> Steps[CommitResult]:
        """A TOUCH, UPDATE or RENAME found no record under the loaded key: a concurrent
        login or ``regenerate()`` of the same client moved it (its superseded marker is
        there, one read on this rare path), or it was revoked or purged while this
        request ran. Never resurrected. A write the handler made is reported
        (SessionConflict, 409), never dropped behind a success; a bare touch ends quietly.
        The cookie is cleared only for a session that ended: a superseded token's browser
        already holds the newer cookie, which a clearing ``Set-Cookie`` would delete.
        A request that ``left_marker`` itself (its own rename failed) cannot tell its own
        marker from a concurrent one, and takes the session as ended."""
        record = session.record
        assert record is not None
        moved = (
            not left_marker
            and self.config.rotation_grace > 0
            and policy.superseded((yield Get(tokens.superseded_key(record.key))), now)
        )
        if not moved:
            self.emit(ev.EXPIRED, handle=record.handle, user_id=record.user_id, reason="gone")
        if policy.lost_write(plan):
            raise SessionConflict("superseded" if moved else "gone")
        return NO_CHANGE if moved else CLEARED

    def _plan(self, session: Session) -> tuple[Plan, float, str | None]:
        """The commit plan for ``session`` at the current time, and the key to patch when
        the whole plan is that one ``Apply`` (a touch or a data write: no events, no
        login), which the drivers run themselves and hand to ``_applied``; otherwise None,
        and ``_commit_plan`` runs the plan."""
        now = self.clock()
        plan = policy.plan_commit(session, self.config, now)
        session.close()
        action = plan.action
        if (action is _TOUCH or action is _UPDATE) and not plan.events:
            # (A login always plans its event, so no login takes this path.)
            record = session.record
            assert record is not None and plan.patch is not None
            if plan.patch.expect_handle is None:  # (with rotation on, ``_moved`` may follow)
                return plan, now, record.key
        return plan, now, None

    def _commit_plan(self, session: Session, plan: Plan, now: float) -> Steps[CommitResult]:
        """Run ``plan`` (``policy.plan_commit`` of ``session``) in every case. The drivers
        run a plan that is one ``Apply`` and nothing after it (a touch or a data write:
        no events, no login) themselves, then ``_applied``.

        Each action has one runner (the table ``_RUNNERS``); it answers the result and
        whether the commit took place, in which case the plan's events are announced and
        the user's session limit enforced."""
        action = plan.action
        if action is Action.NOTHING:
            return NO_CHANGE
        if action is Action.CLEAR:  # a dead token came back: no store action
            return CLEARED
        if action is Action.CONFLICT:  # a superseded token, and the request wrote
            raise SessionConflict("superseded")
        result, took_place = yield from _RUNNERS[action](self, session, plan, now)
        if not took_place:
            return result
        record = session.record
        for name in plan.events:
            if name == ev.LOGOUT and record is not None:
                self.emit(name, handle=record.handle, user_id=record.user_id)
            elif name == ev.LOGIN:
                detail = self.login_detail(session)
                self.emit(name, handle=session.handle, user_id=session.user_id, **detail)
            else:
                self.emit(name, handle=session.handle, user_id=session.user_id)
        limit = self.config.max_sessions_per_user
        user_id = session.user_id
        if limit is not None and session.intents.login and user_id is not None:
            yield from self._evict_over_limit(user_id, session.handle, limit, now)
        return result

    def _run_patch(self, session: Session, plan: Plan, now: float) -> Steps[Ran]:
        """TOUCH, UPDATE: apply the delta to the loaded record, or to where a concurrent
        rotation moved it."""
        record = session.record
        assert record is not None and plan.patch is not None
        applied = yield Apply(record.key, plan.patch)
        if not applied and plan.patch.expect_handle is not None:
            live = yield from self._moved(record, now)
            applied = live is not None and (yield Apply(live.key, plan.patch))
        if not applied:
            return (yield from self._lost(session, plan, now)), False
        return self._applied(session, plan), True

    def _run_rename(self, session: Session, plan: Plan, now: float) -> Steps[Ran]:
        """RENAME: move the record to a new token (regenerate, login, periodic rotation)."""
        record = session.record
        assert record is not None and plan.patch is not None
        token = tokens.new_token()
        key = tokens.storage_key(token)
        if self._limit_denies(session):
            yield from self._deny_over_limit(session, now)
        left_marker = not plan.rotation and self.config.rotation_grace > 0
        if left_marker:
            yield from self._supersede(record, now)
        renamed = yield Rename(record.key, key, plan.patch)
        if not renamed and plan.patch.expect_handle is not None:
            live = yield from self._moved(record, now)
            if live is not None and plan.rotation and not session.intents.login:
                # A concurrent request rotated the token first: keep its token (the
                # client gets it from that response) and apply this request's changes.
                if (yield Apply(live.key, plan.patch)):
                    return self._applied(session, plan), False
                return (yield from self._lost(session, plan, now)), False
            if live is not None:  # a login or regenerate() still moves it to a new token
                renamed = yield Rename(live.key, key, plan.patch)
        if not renamed:
            if not session.intents.login:
                # Revoked meanwhile (logout elsewhere, "sign out other devices", theft
                # detection), or moved by a concurrent login: a rotation or regenerate()
                # must not bring it back.
                return (yield from self._lost(session, plan, now, left_marker)), False
            # A login still deserves a session: store the session's state afresh.
            fresh = policy.new_record(session, self.config, now, tokens.new_handle())
            fresh.key = key
            yield Create(fresh)
            session.stored(fresh)
        elif plan.rotation and self.config.rotation_grace > 0:
            yield Create(policy.rotation_marker(record, now, self.config, tokens.new_handle()))
        session.stored_deadline(plan.patch.fields.get("expires_at"))
        return CommitResult(token=token, max_age=plan.max_age), True

    def _run_create(self, session: Session, plan: Plan, now: float) -> Steps[Ran]:
        """CREATE, REPLACE: store a whole new record (ending the loaded one for REPLACE)."""
        assert plan.record is not None
        if self._limit_denies(session):  # before anything is deleted: a refusal keeps all
            yield from self._deny_over_limit(session, now)
        replace = plan.action is Action.REPLACE
        loaded = session.record
        if replace:
            assert loaded is not None
            if session.intents.login:  # (a logout's own new session is no login)
                yield from self._supersede(loaded, now)
            yield from self._end(loaded)
        token = tokens.new_token()
        new = plan.record
        new.key = tokens.storage_key(token)
        new.handle = tokens.new_handle()  # minted only now: most commits create nothing
        yield Create(new)
        session.stored(new)
        ended = replace and ev.LOGOUT in plan.events
        return CommitResult(token=token, max_age=plan.max_age, ended=ended), True

    def _run_delete(self, session: Session, plan: Plan, now: float) -> Steps[Ran]:
        """DELETE: end the loaded record (logout)."""
        record = session.record
        assert record is not None
        yield from self._end(record)
        return CommitResult(clear=True, ended=True), True

    def _supersede(self, record: SessionRecord, now: float) -> Steps[None]:
        """A login or ``regenerate()`` is about to move this client off ``record``'s key:
        leave the superseded marker there first (one write, at login only), so a request
        of the same client still carrying the old token is recognised from the moment the
        old key stops answering (``_lost``, ``_load_found``). None without a grace window."""
        if self.config.rotation_grace > 0:
            yield Mark(policy.superseded_marker(record, now, self.config, tokens.new_handle()))

    def _moved(self, record: SessionRecord, now: float) -> Steps[SessionRecord | None]:
        """Where the session went when a concurrent request rotated its token after this
        one loaded it: its old key now holds a rotation marker naming its handle. The live
        record, or None when the session ended instead (then nothing may revive it)."""
        marker = yield Get(record.key)
        if marker is None or marker.meta.get(ROTATED_TO_KEY) != record.handle:
            return None
        live: SessionRecord | None = yield GetByHandle(record.handle)
        if live is None or policy.check(live, now) is not _VALID:
            return None
        return live

    def _end(self, record: SessionRecord) -> Steps[None]:
        """Delete the session ``record`` was loaded from (logout, a switch of user). With
        rotation on, a concurrent request may have moved it to a new key, so it is ended
        by its handle, and a rotation marker left under its old key goes too."""
        if self.config.rotation_interval is None:
            yield Delete(record.key)
            return
        ended = yield DeleteHandle(record.handle)
        if ended is None or ended.key != record.key:
            yield Delete(record.key)

    # -- questions an edge may ask, no I/O ------------------------------------------------
    def wants_commit(self, session: Session) -> bool:
        """Would committing ``session`` now write anything (a change, or a touch or a
        rotation the policy asks for)? For an edge whose framework asks before it saves
        (Django's ``modified``)."""
        return policy.plan_commit(session, self.config, self.clock()).action is not _NOTHING

    def through_old_token(self, session: Session, token: str) -> bool:
        """Was ``session`` reached through ``token`` after a concurrent request rotated the
        token out (inside ``rotation_grace``)? An edge that sends the client's token back
        on its own (Django's middleware) must then not send it: it would replace the new
        one in the browser and count as stolen once the grace window closes."""
        record = session.record
        return (
            self._client_side is None
            and record is not None
            and record.key != tokens.storage_key(token)
        )

    # -- async API -----------------------------------------------------------------------
    async def load(self, token: str | None, client: ClientInfo | None = None) -> Session:
        """The session ``token`` names, or a fresh anonymous one (never adopting the
        client's value). One store read at most."""
        if client is not None:
            client.rules = self.client_rules
        return ready(self.consent_policy, await self._load(token, client), client)

    async def _load(self, token: str | None, client: ClientInfo | None) -> Session:
        store = self._records
        if store is None:
            side = self._sealed()
            return await run_async(side.load(token, client), side.revocations)
        now = self.clock()
        key = self._load_key(token, client, now)
        if key is None:  # no token, or a malformed one (a dead token: cleared at commit)
            if token is None:
                return Session(None, now, client)
            return Session.for_dead_token(now, client)
        record = await store.get(key)
        session = self._loaded(record, now, client)
        if session is not None:
            return session
        return await run_async(self._load_found(key, record, now, client), store)

    async def commit(self, session: Session) -> CommitResult:
        """Persist what the request did to ``session`` in as few store calls as the plan
        needs (none for an untouched session between touches)."""
        recall = self.consent_recall
        if session.intents.login and not session.committed:
            user_id = session.user_id
            recalled = None
            if recall is not None and user_id is not None:
                recalled = await recall.latest_consent_async(user_id)
            logged_in(session, recalled)
        return announce(self, session, await self._commit(session))

    async def _commit(self, session: Session) -> CommitResult:
        store = self._records
        if store is None:
            side = self._sealed()
            return await run_async(side.commit(session), side.revocations)
        plan, now, key = self._plan(session)
        if plan.action is _NOTHING:
            return NO_CHANGE
        if key is not None:
            assert plan.patch is not None
            if await store.apply(key, plan.patch):
                return self._applied(session, plan)
            return await run_async(self._lost(session, plan, now), store)
        return await run_async(self._commit_plan(session, plan, now), store)

    # -- sync API (WSGI and friends): same procedures, sync driver ------------------------
    def load_sync(self, token: str | None, client: ClientInfo | None = None) -> Session:
        if client is not None:
            client.rules = self.client_rules
        return ready(self.consent_policy, self._load_sync(token, client), client)

    def _load_sync(self, token: str | None, client: ClientInfo | None) -> Session:
        store = self._records
        if store is None:
            side = self._sealed()
            return run_sync(side.load(token, client), side.revocations)
        now = self.clock()
        key = self._load_key(token, client, now)
        if key is None:  # no token, or a malformed one (a dead token: cleared at commit)
            if token is None:
                return Session(None, now, client)
            return Session.for_dead_token(now, client)
        record = store.get_sync(key)
        session = self._loaded(record, now, client)
        if session is not None:
            return session
        return run_sync(self._load_found(key, record, now, client), store)

    def commit_sync(self, session: Session) -> CommitResult:
        recall = self.consent_recall
        if session.intents.login and not session.committed:
            user_id = session.user_id
            recalled = None
            if recall is not None and user_id is not None:
                recalled = recall.latest_consent(user_id)
            logged_in(session, recalled)
        return announce(self, session, self._commit_sync(session))

    def _commit_sync(self, session: Session) -> CommitResult:
        store = self._records
        if store is None:
            side = self._sealed()
            return run_sync(side.commit(session), side.revocations)
        plan, now, key = self._plan(session)
        if plan.action is _NOTHING:
            return NO_CHANGE
        if key is not None:
            assert plan.patch is not None
            if store.apply_sync(key, plan.patch):
                return self._applied(session, plan)
            return run_sync(self._lost(session, plan, now), store)
        return run_sync(self._commit_plan(session, plan, now), store)

    # -- helpers of the API ----------------------------------------------------------------
    def _sealed(self) -> ClientSideSessions:
        side = self._client_side
        assert side is not None  # (``_records`` is None only for a ClientSide store)
        return side


Ran = tuple[CommitResult, bool]
"""What an action's runner answers: the result, and whether the commit took place."""

_RUNNERS: dict[Action, Callable[[SessionManager, Session, Plan, float], Steps[Ran]]] = {
    Action.TOUCH: SessionManager._run_patch,
    Action.UPDATE: SessionManager._run_patch,
    Action.RENAME: SessionManager._run_rename,
    Action.CREATE: SessionManager._run_create,
    Action.REPLACE: SessionManager._run_create,
    Action.DELETE: SessionManager._run_delete,
}
"""The commit action dispatch: one runner per store action of ``policy.Action``."""
