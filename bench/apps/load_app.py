"""The app the ``load`` benchmark serves under uvicorn: ``GET /read`` answers
``session["n"]`` (0 when unset) and ``GET /write`` increments it, the handlers of the
in-process scenarios, behind coatcheck's ASGI middleware on the store ``COATCHECK_STORE``
names (``memory://`` by default), or with ``--bare`` behind a pass-through that hands each
request a fresh dict and keeps nothing (the same app without the session layer).

A minimal app rather than the demo shop: the demo renders HTML pages whose cost would
drown the session layer's, and its forms need CSRF tokens. Writes are ``GET`` requests so
the load generator needs no CSRF token (a GET is safe, so coatcheck does not check it); a
real app writes on POST, which adds the CSRF check (an HMAC compare) to the writing path.

Run by hand::

    COATCHECK_STORE=redis://127.0.0.1:6379/0 python -m bench.apps.load_app --port 8001
    python -m bench.apps.load_app --bare --port 8002

The benchmark passes a listening socket it bound itself (``--fd``), so there is no race
for a free port and it knows the port before the server starts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware

from bench.asgi_middleware import ROUTES, PlainDictSession
from coatcheck import SessionManager
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.stores import from_url


def build_app(store_url: str | None) -> Starlette:
    """The bare app when ``store_url`` is None, else the app with coatcheck on that store."""
    if store_url is None:
        return Starlette(routes=ROUTES, middleware=[Middleware(PlainDictSession)])
    store = from_url(store_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await store.close()  # pools and background tasks stop on their own loop

    return Starlette(
        routes=ROUTES,
        middleware=[Middleware(SessionMiddleware, manager=SessionManager(store))],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.apps.load_app", description=__doc__)
    parser.add_argument("--bare", action="store_true", help="no session layer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    parser.add_argument(
        "--keep-alive", type=int, default=5, help="idle keep-alive timeout in seconds"
    )
    args = parser.parse_args(argv)
    store_url = None if args.bare else os.environ.get("COATCHECK_STORE", "memory://")
    config = uvicorn.Config(
        build_app(store_url),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=args.keep_alive,
    )
    server = uvicorn.Server(config)
    # socket.socket(fileno=...) detects the family: uvicorn's own --fd assumes AF_UNIX,
    # which would leave TCP_NODELAY off on accepted connections.
    server.run(sockets=None if args.fd is None else [socket.socket(fileno=args.fd)])
    sys.exit(0 if server.started else 1)


if __name__ == "__main__":
    main()
