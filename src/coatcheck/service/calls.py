"""What each session call does, as the middleware would: load, state intents, commit.

The service is one more edge of the engine: every call goes through
``SessionManager.load`` and ``commit`` exactly as a request through the middleware does,
so strict mode, deltas, rotation, theft detection and the session limit hold here too.
These functions know nothing of HTTP; ``api`` turns their answers and ``Problem``s into
responses.
"""

from __future__ import annotations

from typing import Any, Final

from coatcheck.core.client import ClientInfo
from coatcheck.core.consent import NECESSARY
from coatcheck.core.csrf_secret import mask, stored_secret
from coatcheck.core.session import Session
from coatcheck.engine.manager import SessionInfo, SessionManager
from coatcheck.errors import ConsentError
from coatcheck.service import models, problems, signing
from coatcheck.service.problems import Problem
from coatcheck.service.settings import ServiceSettings
from coatcheck.service.signing import Signer

CREATED_BY: Final = "created_by"
"""Engine metadata set on a session created empty and anonymous, which would otherwise
not be stored at all (the engine stores a session only once there is something in it)."""


def client_info(client: models.Client | None) -> ClientInfo | None:
    if client is None:
        return None
    return ClientInfo(client.user_agent, client.ip, bool(client.gpc))


def view(session: Session) -> dict[str, Any]:
    """The documented ``session`` view of a stored session.

    ``csrf_token`` is there only when the session has a CSRF secret (a Python edge
    rendered a form, or a caller asked with ``csrf: true``): a token masked afresh for
    this answer, which verifies wherever the session's tokens do. A client of the API
    (the Express middleware) unmasks it to check the tokens its pages send back and
    masks new ones from it; it is no more than the caller already holds, since the
    caller holds the session's own token."""
    answer = {
        "handle": session.handle,
        "user_id": session.user_id,
        "level": session.auth_level,
        "data": dict(session.items()),
        "created_at": session.created_at,
        "last_seen_at": session.last_seen_at,
        "expires_at": session.expires_at,
        "absolute_at": session.absolute_at,
        "remember": session.remember,
        "consent": consent_view(session),
    }
    secret = stored_secret(session)
    if secret is not None:
        answer["csrf_token"] = mask(secret)
    return answer


def consent_view(session: Session) -> dict[str, Any]:
    """The ``consent`` member of the session view."""
    consent = session.consent
    state = consent.state
    policy = consent.policy
    if state is None:
        return {
            "categories": {name: name == NECESSARY for name in policy.categories},
            "revision": policy.revision,
            "at": None,
            "method": None,
            "gpc": False,
            "needs_prompt": True,
        }
    return {**state.as_json(policy), "needs_prompt": consent.needs_prompt}


async def consent(manager: SessionManager, body: models.Consent) -> dict[str, Any]:
    """Record a consent choice: the named categories granted and denied, by ``method``."""
    grant, deny = body.grant or [], body.deny or []
    both = sorted(set(grant).intersection(deny))
    if both:
        raise Problem(problems.INVALID_BODY, f"category {both[0]!r} is both granted and denied")
    session = await live(manager, body.token)
    choice = session.consent
    try:
        if body.method == "accept_all" and not (grant or deny):
            choice.accept_all()
        elif body.method == "reject_all" and not (grant or deny):
            choice.reject_all()
        elif body.method == "gpc" and not (grant or deny):
            choice.set({}, method="gpc")
        else:
            mapping = {**dict.fromkeys(grant, True), **dict.fromkeys(deny, False)}
            choice.set(mapping, method=body.method)
    except ConsentError as exc:
        session.close()
        raise Problem(problems.INVALID_BODY, str(exc)) from None
    token = await committed_token(manager, session)
    answer: dict[str, Any] = {"session": await reloaded(manager, token or body.token)}
    if token is not None:  # a periodic rotation fell due with this write
        answer["token"] = token
    return answer


def device(info: SessionInfo) -> dict[str, Any]:
    return {
        "handle": info.handle,
        "created_at": info.created_at,
        "last_seen_at": info.last_seen_at,
        "expires_at": info.expires_at,
        "auth_at": info.auth_at,
        "remember": info.remember,
        "user_agent": info.user_agent,
        "ip": info.ip,
    }


def not_found() -> Problem:
    return Problem(
        problems.SESSION_NOT_FOUND,
        "the token names no live session (unknown, expired, logged out or rotated out)",
    )


async def live(manager: SessionManager, token: str, client: ClientInfo | None = None) -> Session:
    """The live session ``token`` names; the session-not-found problem otherwise."""
    session = await manager.load(token, client)
    if session.is_new:
        session.close()
        raise not_found()
    return session


async def reloaded(manager: SessionManager, token: str) -> dict[str, Any]:
    """The view of the session ``token`` names as the store now holds it (after a write,
    the loaded session's times are those from before it)."""
    session = await live(manager, token)
    session.close()
    return view(session)


async def committed_token(manager: SessionManager, session: Session) -> str | None:
    """Commit ``session``; the new token, if any. A session ended meanwhile (revoked by
    another call) is not found: nothing here may bring it back."""
    result = await manager.commit(session)
    if result.clear:
        raise not_found()
    return result.token


async def create(manager: SessionManager, body: models.CreateSession) -> dict[str, Any]:
    if body.user_id is None and (body.level is not None or body.remember is not None):
        raise Problem(problems.INVALID_BODY, "level and remember need a user_id")
    session = await manager.load(None, client_info(body.client))
    for key, value in (body.data or {}).items():
        session[key] = value
    if body.user_id is not None:
        session.login(body.user_id, remember=bool(body.remember), level=body.level or 1)
    elif not body.data and not body.csrf:
        session.set_meta(CREATED_BY, "service")
    if body.csrf:
        session.csrf_token()  # creates the secret, stored by this commit
    token = await committed_token(manager, session)
    assert token is not None  # a created session always has a new token
    return {"token": token, "session": await reloaded(manager, token)}


async def introspect(manager: SessionManager, body: models.Introspect) -> dict[str, Any]:
    """RFC 7662's answer: ``active: false`` for any token that names no live session."""
    session = await manager.load(body.token, client_info(body.client))
    if session.is_new:
        session.close()
        return {"active": False}
    token = None
    if body.touch:
        result = await manager.commit(session)
        if result.clear:
            return {"active": False}
        token = result.token
    else:
        session.close()
    answer: dict[str, Any] = {"active": True, "session": view(session)}
    if token is not None:
        answer["token"] = token
    return answer


async def update(manager: SessionManager, body: models.Update) -> dict[str, Any]:
    values = body.set or {}
    removed = body.unset or []
    ops = body.ops or []
    both = sorted(set(values).intersection(removed))
    if both:
        raise Problem(problems.INVALID_BODY, f"key {both[0]!r} is both set and unset")
    written = sorted({op.key for op in ops}.intersection({*values, *removed}))
    if written:
        # An operation on a key this call also writes would be applied here, not in the
        # store (the written value wins), so it would no longer be atomic: refused.
        raise Problem(problems.INVALID_BODY, f"key {written[0]!r} is both written and operated on")
    session = await live(manager, body.token)
    for key in removed:
        if key in session:
            del session[key]
    for key, value in values.items():
        session[key] = value
    for op in ops:
        if isinstance(op, models.Incr):
            session.incr(op.key, op.by)
        elif isinstance(op, models.Append):
            session.append(op.key, op.value)
        else:
            session.add_to_set(op.key, op.value)
    if body.csrf:
        session.csrf_token()  # a secret when there is none; an existing one stays
    token = await committed_token(manager, session)
    answer: dict[str, Any] = {"session": await reloaded(manager, token or body.token)}
    if token is not None:  # a periodic rotation fell due with this write
        answer["token"] = token
    return answer


async def login(manager: SessionManager, body: models.Login) -> dict[str, Any]:
    session = await live(manager, body.token)
    session.login(body.user_id, remember=bool(body.remember), level=body.level or 1)
    token = await committed_token(manager, session)
    assert token is not None  # a login always issues a new token
    return {"token": token, "session": await reloaded(manager, token)}


async def regenerate(manager: SessionManager, body: models.TokenOnly) -> dict[str, Any]:
    session = await live(manager, body.token)
    session.regenerate()
    token = await committed_token(manager, session)
    if token is None:
        raise not_found()
    return {"token": token, "session": await reloaded(manager, token)}


async def logout(manager: SessionManager, body: models.TokenOnly) -> None:
    session = await live(manager, body.token)
    session.logout()
    await manager.commit(session)


async def make_jwt(
    manager: SessionManager, signer: Signer, settings: ServiceSettings, body: models.MakeJwt
) -> dict[str, Any]:
    """A JWT for the session's user. No commit: turning a session into a token is not
    activity (and so never rotates the token the caller holds)."""
    session = await live(manager, body.token)
    session.close()
    return await jwt_for(
        manager,
        signer,
        session,
        body.audience or settings.jwt_audience,
        body.ttl or settings.jwt_ttl,
    )


async def jwt_for(
    manager: SessionManager, signer: Signer, session: Session, audience: str, ttl: int
) -> dict[str, Any]:
    if session.user_id is None or session.handle is None or session.expires_at is None:
        raise Problem(problems.SESSION_ANONYMOUS, "only a signed-in session has a JWT")
    claims = signing.claims(
        user_id=session.user_id,
        handle=session.handle,
        level=session.auth_level,
        audience=audience,
        now=manager.clock(),
        ttl=ttl,
        deadline=session.expires_at,
    )
    return {"jwt": await signer.sign(claims), "expires_at": claims["exp"]}
