"""Long deltas through ``/v1/sessions/update``: hundreds of keys set or unset at once, long
non-ASCII keys, lists near and past the body limit. Each answer is a 2xx or a 4xx problem,
never a 5xx: a body the document accepts is applied whole (SQLite's functions take at most
127 arguments, which a long delta once turned into a 503), one it refuses is a 413 or a
422 that writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.service.conftest import Running


@pytest.fixture
def api(running: Running) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {running.admin_key}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=30) as client:
        yield client


def update(api: httpx.Client, token: str, **body: Any) -> httpx.Response:
    return api.post("/v1/sessions/update", json={"token": token, **body})


def test_hundreds_of_keys_are_set_and_unset_in_one_call(api: httpx.Client) -> None:
    keys = [f"clé-{i}-ключ" for i in range(200)]
    created = api.post("/v1/sessions", json={"data": dict.fromkeys(keys, 1)})
    assert created.status_code == 201, created.text
    token = created.json()["token"]

    answer = update(api, token, unset=keys[:150], set={f"new-{i}-😀": [i] for i in range(130)})
    assert answer.status_code == 200, answer.text
    expected: dict[str, Any] = dict.fromkeys(keys[150:], 1)
    expected |= {f"new-{i}-😀": [i] for i in range(130)}
    assert answer.json()["session"]["data"] == expected

    answer = update(api, token, unset=list(expected))
    assert answer.status_code == 200, answer.text
    assert answer.json()["session"]["data"] == {}


def test_a_long_non_ascii_unset_list_is_a_2xx_or_a_4xx_problem(
    running: Running, api: httpx.Client
) -> None:
    token = api.post("/v1/sessions", json={"data": {"keep": 1}}).json()["token"]
    # 60 keys of 600 two-byte characters: 72 kB, under the 80 kB body limit; none is set.
    answer = update(api, token, unset=["é" * 600 + str(i) for i in range(60)])
    assert answer.status_code == 200, answer.text
    assert answer.json()["session"]["data"] == {"keep": 1}
    rows = running.session_rows()
    # Past the body limit: 413. A key past 1024 characters, or a lone surrogate: 422.
    too_long = update(api, token, unset=["é" * 1000 + str(i) for i in range(70)])
    assert too_long.status_code == 413, too_long.text
    assert too_long.headers["content-type"] == "application/problem+json"
    for bad in (["é" * 1025], ["ok", "😀" * 1025], [""]):
        refused = update(api, token, unset=bad)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    raw = b'{"token": "%s", "unset": ["\\ud800\\u00e9"]}' % token.encode()
    refused = api.post(
        "/v1/sessions/update", content=raw, headers={"content-type": "application/json"}
    )
    assert refused.status_code == 422, refused.text
    assert running.session_rows() == rows
