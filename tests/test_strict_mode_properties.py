"""Property-based strict mode: arbitrary cookies, bearer tokens, methods and JSON bodies
never produce a 500 and never make a client-chosen value a session ID.

Half the examples run with the CSRF check off: with it on, a cookie request that writes is
refused (403) before its write, and strict mode must hold on the write path too. The CSRF
properties themselves are in test_csrf.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.stores import MemoryStore
from tests.support.clock import FakeClock
from tests.support.shop import create_shop

COOKIE = "__Host-session"
BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=200,
)
token_like = st.one_of(
    header_text,
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        min_size=40,
        max_size=46,
    ),
    st.just(tokens.new_token()),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cookie_value=token_like,
    bearer=st.one_of(st.none(), token_like),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.sampled_from(["/read", "/set", "/noop", "/login?user=u", "/logout", "/regenerate"]),
    body=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    extra_cookie=header_text,
    csrf=st.booleans(),
)
def test_arbitrary_requests_never_500_and_never_adopt(
    cookie_value: str,
    bearer: str | None,
    method: str,
    path: str,
    body: dict[str, Any],
    extra_cookie: str,
    csrf: bool,
) -> None:
    store = MemoryStore()
    manager = SessionManager(store, SessionConfig(csrf=csrf), clock=FakeClock())
    app = create_shop(manager)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://shop") as client:
            headers = {"Cookie": f"{extra_cookie}; {COOKIE}={cookie_value}".encode("latin-1")}
            if bearer is not None:
                headers["Authorization"] = f"Bearer {bearer}".encode("latin-1")
            return await client.request(
                method, path, headers=headers, content=json.dumps(body).encode()
            )

    response = run(go())
    assert response.status_code != 500
    presented = {cookie_value, bearer}
    issued = [
        v.split(";")[0].partition("=")[2] for v in response.headers.get_list("set-cookie")
    ] + [response.headers.get("x-session-token", "")]
    for value in issued:
        if value and value != '""':
            assert value not in presented
            assert tokens.is_well_formed(value)
    # Nothing is ever filed under a value the client chose.
    for value in presented:
        if value is not None and tokens.is_well_formed(value):
            assert store.get_sync(tokens.storage_key(value)) is None
