"""The floor the ``service`` benchmark holds ``coatcheck serve`` against: a bare FastAPI app
under the same uvicorn (``uvicorn.run(app, host=..., port=..., log_level="info")``, as
``serve`` calls it, access log included) that does the one raw store read an introspect
needs and nothing else: no API key, no engine, no metrics, no commit.

- ``POST /introspect`` with ``{"token": ...}``: SHA-256 of the token, one read of that
  session's record, ``{"active": true|false}``.
- ``GET /v1/forward-auth``: the same read for the token in the ``__Host-session`` cookie,
  200 with ``X-Coatcheck-User`` or 401, so nginx's ``auth_request`` can ask it in place of
  the service (the path is the service's, so ``docs/gateways/nginx.conf`` runs unchanged).

The read is what the store itself does, with the store's own client and settings: for
SQLite one ``SELECT`` of the row by key on a connection in WAL mode, on the event loop as
the store does; for Redis one ``HGETALL`` of the record's hash with redis.asyncio (RESP2,
decoded replies, the store's timeouts). Run by hand::

    python -m bench.apps.service_floor --store sqlite:///coatcheck.db --port 8001
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

COOKIE = "__Host-session"
Reader = Callable[[str], Awaitable[bool]]
"""Storage key -> does a record exist (one raw read)."""


class Introspect(BaseModel):
    token: str


def sqlite_reader(path: str) -> Reader:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    sql = (
        "SELECT key, handle, user_id, data, created_at, last_seen_at, expires_at, absolute_at, "
        "auth_at, remember, user_agent, ip, meta FROM coatcheck_sessions WHERE key = ?"
    )

    async def read(key: str) -> bool:
        return conn.execute(sql, (key,)).fetchone() is not None

    return read


def redis_reader(url: str, prefix: str) -> Reader:
    import redis.asyncio

    from coatcheck.stores.redis import RedisOptions

    options = RedisOptions.from_url(url)  # the store's own timeouts
    client = redis.asyncio.Redis.from_url(
        url.split("?")[0],
        decode_responses=True,
        protocol=2,
        socket_timeout=options.timeout,
        socket_connect_timeout=options.connect_timeout,
    )

    async def read(key: str) -> bool:
        return bool(await client.hgetall(f"{prefix}s:{key}"))

    return read


def reader(store_url: str) -> Reader:
    parts = urlsplit(store_url)
    if parts.scheme == "sqlite":
        return sqlite_reader(parts.path)
    if parts.scheme == "redis":
        prefix = "coatcheck:"
        for pair in parts.query.split("&"):
            name, _, value = pair.partition("=")
            if name == "prefix":
                prefix = value
        return redis_reader(store_url, prefix)
    raise SystemExit(f"service_floor: no raw reader for {store_url!r}")


def storage_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def build_app(read: Reader) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/introspect")
    async def introspect(body: Introspect) -> dict[str, Any]:
        return {"active": await read(storage_key(body.token))}

    @app.get("/v1/forward-auth")
    async def forward_auth(request: Request) -> Response:
        token = request.cookies.get(COOKIE)
        if token and await read(storage_key(token)):
            return Response(status_code=200, headers={"x-coatcheck-user": "someone"})
        return Response(status_code=401)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.apps.service_floor")
    parser.add_argument("--store", required=True, help="sqlite:///PATH or redis://HOST:PORT/DB")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(build_app(reader(args.store)), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
