"""The framework-free rules of ``coatcheck.http``, asked directly, without an edge: the
refusal table, the sans-IO CSRF check, and the pieces every edge shares (the one
``AuthenticationRequired``, the manager's scope key, the test-client registry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flask
import pytest

from coatcheck import MemorySink, SessionConfig, SessionManager, errors
from coatcheck.core.atomic import OperationTypeError
from coatcheck.core.session import Session
from coatcheck.http import refusals
from coatcheck.http.csrf_check import CsrfCheck, CsrfRequest, NeedBody
from coatcheck.http.forms import MAX_FORM_BODY
from coatcheck.security.csrf import Rejection
from coatcheck.stores import MemoryStore
from coatcheck.testing import clients, login_client

FORM = "application/x-www-form-urlencoded"


# -- refusals ---------------------------------------------------------------------------------
def _headers(refusal: refusals.Refusal) -> dict[str, str]:
    return dict(refusal.headers)


def test_each_refused_error_gets_its_status_from_the_error_class() -> None:
    down = refusals.refusal(errors.StoreUnavailable("down"))
    assert (down.status, down.wsgi_status) == (503, "503 Service Unavailable")
    assert down == refusals.UNAVAILABLE and down.body == refusals.UNAVAILABLE_BODY
    assert _headers(down)["retry-after"] == "5"
    throttled = refusals.refusal(errors.Throttled(7))
    assert throttled.status == 429 and _headers(throttled)["retry-after"] == "7"
    limited = refusals.refusal(errors.SessionLimitExceeded("two"))
    assert limited.status == 403 and "retry-after" not in _headers(limited)
    assert refusals.refusal(errors.SessionTooLarge(10, 5)).status == 413
    for answer in (down, throttled, limited):
        assert _headers(answer)["cache-control"] == "no-store"
        assert _headers(answer)["content-length"] == str(len(answer.body))


def test_a_subclass_is_answered_by_its_base_and_the_unknown_as_unavailable() -> None:
    class Timeout(errors.StoreUnavailable):
        pass

    assert refusals.refusal(Timeout("slow")).status == 503
    assert refusals.refusal(errors.CoatcheckError("odd")).status == 503


def test_data_errors_are_left_to_the_app_but_a_session_too_large_is_refused() -> None:
    # The store refuses a write past max_data_bytes that concurrent requests made
    # inevitable: a 413 to the client. A value that is not JSON, or an atomic operation's
    # type clash, stays the app's bug (a 500).
    assert set(refusals.REFUSED) == {
        errors.StoreUnavailable,
        errors.Throttled,
        errors.SessionLimitExceeded,
        errors.SessionLocked,
        errors.SessionConflict,  # a write lost to a concurrent login or a revocation: 409
        errors.SessionTooLarge,
    }
    assert not issubclass(OperationTypeError, refusals.REFUSED)
    assert not issubclass(errors.SessionDataError, refusals.REFUSED)


def test_a_lost_write_is_a_409_that_sets_no_cookie() -> None:
    """Whatever the edge, SessionConflict is answered 409 with Retry-After and no
    Set-Cookie (the browser may hold a newer token than the request's)."""
    answer = refusals.refused(errors.SessionConflict("superseded"), "commit")
    headers = dict(answer.headers)
    assert (answer.status, answer.phrase) == (409, "Conflict")
    assert headers["retry-after"] == "1" and headers["cache-control"] == "no-store"
    assert "set-cookie" not in headers
    assert b"retry" in answer.body


# -- the sans-IO CSRF check -------------------------------------------------------------------
@pytest.fixture
def manager() -> SessionManager:
    return SessionManager(MemoryStore())


def _request(**fields: Any) -> CsrfRequest:
    base: dict[str, Any] = {
        "origin": "https://shop.example",
        "sec_fetch_site": "same-origin",
        "host": "shop.example",
        "token": None,
        "content_type": None,
        "content_length": None,
    }
    return CsrfRequest(**{**base, **fields})


def _session(manager: SessionManager) -> tuple[Session, str]:
    session = manager.load_sync(None)
    return session, session.csrf_token()


def test_safe_methods_and_header_transport_are_never_checked(manager: SessionManager) -> None:
    check = CsrfCheck(manager)
    for method in ("GET", "HEAD", "OPTIONS", "TRACE", "get"):
        assert not check.applies(method)
    assert check.applies("POST") and check.applies("DELETE")
    assert not check.applies("POST", bearer=True)
    session, _ = _session(manager)
    session.via_bearer = True  # an edge that learns the transport only with the session
    assert check.start(session, "/", "https", _request()) is None
    assert not CsrfCheck(SessionManager(MemoryStore(), SessionConfig(csrf=False))).applies("POST")


def test_a_header_token_is_decided_at_once(manager: SessionManager) -> None:
    check = CsrfCheck(manager)
    session, token = _session(manager)
    assert check.start(session, "/", "https", _request(token=token)) is None
    assert check.start(session, "/", "https", _request(token="x")) is Rejection.INVALID_TOKEN
    assert check.start(session, "/", "https", _request()) is Rejection.MISSING_TOKEN
    cross = _request(token=token, sec_fetch_site="cross-site")
    assert check.start(session, "/", "https", cross) is Rejection.CROSS_SITE
    foreign = _request(token=token, origin="https://evil.example")
    assert check.start(session, "/", "https", foreign) is Rejection.ORIGIN_MISMATCH


def test_a_form_without_a_header_token_needs_the_body(manager: SessionManager) -> None:
    check = CsrfCheck(manager)
    session, token = _session(manager)
    pending = check.start(session, "/", "https", _request(content_type=FORM))
    assert isinstance(pending, NeedBody) and pending.limit == MAX_FORM_BODY
    assert check.with_body(session, pending, f"csrf_token={token}".encode()) is None
    assert check.with_body(session, pending, b"item=hat") is Rejection.MISSING_TOKEN
    assert check.with_body(session, pending, None) is Rejection.BODY_TOO_LARGE
    assert check.with_field(session, token) is None
    assert check.with_field(session, ["not", "a", "string"]) is Rejection.MISSING_TOKEN


def test_exempt_paths_go_by_segment(manager: SessionManager) -> None:
    check = CsrfCheck(manager, ["/webhooks"])
    session, _ = _session(manager)
    assert check.start(session, "/webhooks/stripe", "https", _request()) is None
    assert check.start(session, "/webhooks", "https", _request()) is None
    assert check.start(session, "/webhooks-admin", "https", _request()) is Rejection.MISSING_TOKEN


def test_a_refusal_is_a_plain_403_and_an_event() -> None:
    sink = MemorySink()
    manager = SessionManager(MemoryStore(), events=[sink])
    session, _ = _session(manager)
    refusal = CsrfCheck(manager).refuse(session, Rejection.MISSING_TOKEN, "POST", "/cart")
    assert refusal.wsgi_status == "403 Forbidden"
    assert refusal.body == b"CSRF check failed: missing token\n"
    assert _headers(refusal)["cache-control"] == "no-store"
    (event,) = [e for e in sink.events if e.name == "csrf.rejected"]
    assert event.detail["reason"] == "missing_token" and event.detail["path"] == "/cart"


# -- shared across edges ----------------------------------------------------------------------
def test_one_authentication_error_for_every_edge() -> None:
    from werkzeug.exceptions import Unauthorized

    from coatcheck.fastapi import AuthenticationRequired as FastAPIAuth
    from coatcheck.flask import AuthenticationRequired as FlaskAuth

    assert issubclass(FastAPIAuth, errors.AuthenticationRequired)
    assert issubclass(FlaskAuth, errors.AuthenticationRequired)
    assert issubclass(FlaskAuth, Unauthorized)
    with flask.Flask(__name__).app_context():
        exc = FlaskAuth("reauthentication_required", max_age=300)
    assert (exc.code, exc.status, exc.reason) == (401, 401, "reauthentication_required")
    assert exc.problem.body() == {"error": "reauthentication_required", "max_age": 300}
    api = FastAPIAuth("login_required")
    assert (api.status_code, api.detail) == (401, {"error": "login_required"})
    assert api.problem.reason == "login_required"


def test_the_manager_scope_key_is_one_constant() -> None:
    from coatcheck import asgi, fastapi

    assert fastapi.MANAGER_SCOPE_KEY is asgi.MANAGER_SCOPE_KEY == "coatcheck.manager"


def test_another_test_client_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.token: str | None = None

    class RecorderAdapter:
        def recognises(self, client: object) -> bool:
            return isinstance(client, Recorder)

        def resolve(
            self,
            client: Any,
            manager: SessionManager | None,
            user: Any,
            data: Mapping[str, Any] | None,
        ) -> clients.Resolved:
            return clients.plain_user(manager, user, data)

        def deliver(self, client: Any, manager: SessionManager, token: str, *_: Any) -> None:
            client.token = token

    monkeypatch.setattr(clients, "_ADAPTERS", list(clients._ADAPTERS))
    clients.register_client(RecorderAdapter())
    manager = SessionManager(MemoryStore())
    recorder = Recorder()
    token = login_client(recorder, manager, "ada")
    assert recorder.token == token
    assert manager.load_sync(token).user_id == "ada"
