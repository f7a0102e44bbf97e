"""JWTs: ``POST /v1/sessions/token`` signs claims any service verifies alone with the
JWKS; no JWT outlives 15 minutes or its session; ``coatcheck jwt-keys rotate`` moves
signing to a new key while the old one stays published until its last token expired."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from coatcheck.engine.operations import run_sync
from coatcheck.service import reserved, signing
from coatcheck.stores import MemoryStore
from tests.service.conftest import Running, start_running
from tests.service.server import coatcheck


@pytest.fixture
def api(running: Running) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {running.admin_key}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=10) as client:
        yield client


def signed_in(api: httpx.Client, user_id: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    made = api.post("/v1/sessions", json={"user_id": user_id, **extra}).json()
    return made["token"], made["session"]


def verify(url: str, token: str, audience: str) -> dict[str, Any]:
    """Verify as an upstream service would: the JWKS, the kid, the audience."""
    client = jwt.PyJWKClient(f"{url}/.well-known/jwks.json", cache_keys=False)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["EdDSA", "ES256"], audience=audience)


def test_a_jwt_carries_the_session_and_verifies_with_the_jwks(
    running: Running, api: httpx.Client
) -> None:
    token, view = signed_in(api, "yara", level=3)
    answer = api.post("/v1/sessions/token", json={"token": token, "audience": "billing", "ttl": 60})
    assert answer.status_code == 200
    body = answer.json()
    claims = verify(running.url, body["jwt"], "billing")
    assert set(claims) == {"sub", "sid", "lvl", "aud", "iat", "exp"}
    assert (claims["sub"], claims["sid"], claims["lvl"], claims["aud"]) == (
        "yara",
        view["handle"],
        3,
        "billing",
    )
    assert claims["exp"] == claims["iat"] + 60 == body["expires_at"]
    assert jwt.get_unverified_header(body["jwt"])["alg"] == "EdDSA"
    default = api.post("/v1/sessions/token", json={"token": token}).json()
    claims = verify(running.url, default["jwt"], "coatcheck")  # COATCHECK_JWT_AUDIENCE's default
    assert claims["exp"] == claims["iat"] + 300  # COATCHECK_JWT_TTL's default
    with pytest.raises(jwt.InvalidAudienceError):
        verify(running.url, default["jwt"], "billing")


def test_no_jwt_outlives_its_session(running: Running, api: httpx.Client) -> None:
    token, _ = signed_in(api, "zed")
    deadline = time.time() + 42.7
    key = hashlib.sha256(token.encode()).hexdigest()
    with sqlite3.connect(running.db) as conn:  # the session ends in 42.7 s
        conn.execute("UPDATE coatcheck_sessions SET expires_at = ? WHERE key = ?", (deadline, key))
    body = api.post("/v1/sessions/token", json={"token": token, "ttl": 900}).json()
    assert body["expires_at"] == int(deadline)  # rounded down: never after the deadline
    assert verify(running.url, body["jwt"], "coatcheck")["exp"] == int(deadline)


def test_the_jwks_is_public_and_cacheable(running: Running) -> None:
    answer = httpx.get(f"{running.url}/.well-known/jwks.json")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "public, max-age=60"
    (key,) = answer.json()["keys"]
    assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")


def test_es256_when_the_operator_chooses_it(tmp_path: Path) -> None:
    service = start_running(tmp_path, {"COATCHECK_JWT_ALGORITHM": "ES256"})
    try:
        headers = {"authorization": f"Bearer {service.admin_key}"}
        with httpx.Client(base_url=service.url, headers=headers) as api:
            token, _ = signed_in(api, "amy")
            made = api.post("/v1/sessions/token", json={"token": token}).json()
        assert jwt.get_unverified_header(made["jwt"])["alg"] == "ES256"
        assert verify(service.url, made["jwt"], "coatcheck")["sub"] == "amy"
        (key,) = httpx.get(f"{service.url}/.well-known/jwks.json").json()["keys"]
        assert (key["kty"], key["crv"]) == ("EC", "P-256")
    finally:
        service.server.stop()


def test_rotate_signs_with_a_new_key_and_keeps_the_old_one_published(tmp_path: Path) -> None:
    service = start_running(tmp_path)
    try:
        headers = {"authorization": f"Bearer {service.admin_key}"}
        with httpx.Client(base_url=service.url, headers=headers) as api:
            token, _ = signed_in(api, "ben")
            old = api.post("/v1/sessions/token", json={"token": token}).json()["jwt"]
            old_kid = jwt.get_unverified_header(old)["kid"]
            new_kid = coatcheck("jwt-keys", "rotate", "--store", service.store_url).strip()
            assert new_kid != old_kid
            jwks = httpx.get(f"{service.url}/.well-known/jwks.json").json()
            assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}  # published at once
            signer = jwt.get_unverified_header(
                api.post("/v1/sessions/token", json={"token": token}).json()["jwt"]
            )["kid"]
            assert signer == old_kid  # ... but not signing yet
            deadline = time.monotonic() + 2 * signing.RING_REFRESH + 5
            kid = old_kid
            while kid != new_kid:  # it signs RING_REFRESH after the rotation, once nodes reread
                assert time.monotonic() < deadline, "the node never signed with the new key"
                time.sleep(0.2)  # waiting for the node to reread the ring, not for expiry
                new = api.post("/v1/sessions/token", json={"token": token}).json()["jwt"]
                kid = jwt.get_unverified_header(new)["kid"]
        published = {
            k["kid"] for k in httpx.get(f"{service.url}/.well-known/jwks.json").json()["keys"]
        }
        assert published == {old_kid, new_kid}
        assert verify(service.url, old, "coatcheck")["sub"] == "ben"  # old tokens still verify
        with sqlite3.connect(service.db) as conn:  # the private keys live in the store
            (ring,) = conn.execute(
                "SELECT data FROM coatcheck_sessions WHERE key = ?",
                (reserved.reserved_key("jwt-keys"),),
            ).fetchone()
        assert ring.count("BEGIN PRIVATE KEY") == 2
        listed = coatcheck("jwt-keys", "list", "--store", service.store_url)
        rows = {
            kid: next(line for line in listed.splitlines() if kid in line)
            for kid in (old_kid, new_kid)
        }
        assert "signing" in rows[new_kid]
        assert "published until" in rows[old_kid]
    finally:
        service.server.stop()


def test_a_new_key_is_published_before_it_signs_and_a_retired_one_until_its_tokens_died() -> None:
    # The new key signs 5 s (RING_REFRESH) after the rotation, when every node has read it;
    # the old one signs until then, each of its tokens lives 15 minutes at most, and a
    # minute more for clocks that disagree: published 965 s after the rotation.
    assert signing.RETENTION == 5 + 900 + 60
    store = MemoryStore()
    t0 = 1_800_000_000.0
    first = run_sync(signing.rotate("EdDSA", t0), store)
    assert first.active_at == t0  # the very first key signs at once
    second = run_sync(signing.rotate("EdDSA", t0 + 10), store)
    keys = signing.parse(run_sync(reserved.read(reserved.JWT_KEYS), store))
    assert [k.kid for k in signing.published(keys, t0 + 10)] == [second.kid, first.kid]
    assert signing.signing_key(keys, t0 + 14.9) == keys[first.kid]
    assert signing.signing_key(keys, t0 + 15) == keys[second.kid]
    assert keys[first.kid].retired_at == t0 + 10
    assert keys[first.kid].published_at(t0 + 10 + 964.9)
    assert not keys[first.kid].published_at(t0 + 10 + 965)
    # The next rotation after that drops the first key from the ring altogether.
    third = run_sync(signing.rotate("ES256", t0 + 10 + 965), store)
    keys = signing.parse(run_sync(reserved.read(reserved.JWT_KEYS), store))
    assert set(keys) == {second.kid, third.kid}
    assert keys[second.kid].retired_at == t0 + 10 + 965
    assert signing.signing_key(keys, t0 + 10 + 965) == keys[second.kid]
