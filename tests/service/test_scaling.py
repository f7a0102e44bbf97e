"""Several ``coatcheck serve`` nodes on one PostgreSQL store: sessions, API keys and JWT
keys are the store's, so any node answers for any session and a dead node loses nothing.
(The Redis case, behind nginx round-robin, is in ``test_nginx.py``.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt

from tests.service.server import ServiceProcess
from tests.support.postgres_server import scratch_table, store_url


def test_a_session_made_on_one_postgres_node_works_on_another(tmp_path: Path) -> None:
    with scratch_table() as table:
        url = store_url(table)
        first = ServiceProcess(tmp_path / "a", url).start()
        second = ServiceProcess(tmp_path / "b", url).start()
        try:
            key = first.printed_key()
            assert key is not None and second.printed_key() is None
            with first.client(key) as a, second.client(key) as b:
                made = a.post("/v1/sessions", json={"user_id": "yves", "data": {"n": 1}}).json()
                token = made["token"]
                seen = b.post("/v1/sessions/introspect", json={"token": token}).json()
                assert seen["active"] and seen["session"]["data"] == {"n": 1}
                updated = b.post("/v1/sessions/update", json={"token": token, "set": {"n": 2}})
                assert updated.status_code == 200
                signed = a.post("/v1/sessions/token", json={"token": token}).json()["jwt"]
                first.kill()
                assert b.post("/v1/sessions/introspect", json={"token": token}).json()["session"][
                    "data"
                ] == {"n": 2}
            # A JWT one node signs, the other node's JWKS verifies: one ring in the store.
            keys = jwt.PyJWKClient(f"{second.url}/.well-known/jwks.json")
            claims = jwt.decode(
                signed, keys.get_signing_key_from_jwt(signed).key, ["EdDSA"], audience="coatcheck"
            )
            assert claims["sub"] == "yves"
            assert httpx.get(f"{second.url}/readyz").status_code == 200
        finally:
            first.stop()
            second.stop()
