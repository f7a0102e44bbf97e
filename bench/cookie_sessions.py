"""Client-side sessions: coatcheck's encrypted CookieStore against Starlette's signed cookie.

Both keep the whole session in the cookie and nothing on a server, so this isolates what
each costs per request: coatcheck opens an AES-256-GCM sealed payload (and seals a new one
on a write), Starlette verifies an itsdangerous HMAC signature over base64 JSON (and signs
anew on a write). The app, the client and the checks are the ASGI scenario's
(``asgi_middleware``): the same Starlette app with ``/read`` and ``/write``, called
in-process, every configuration proven to keep state before and after timing.

What the numbers do not say: the sealed cookie is also confidential (Starlette's is only
signed: anyone can read it), carries its idle and absolute deadlines inside the
authenticated payload (Starlette's signature has a max age, no idle timeout), and can be
revoked per user with a small revocation store (not exercised here: anonymous sessions never
consult it).
"""

from __future__ import annotations

import contextlib

from rich.console import Console
from starlette.applications import Starlette
from starlette.middleware import Middleware

from coatcheck import SessionManager
from coatcheck.integrations.asgi import SessionMiddleware as CoatcheckMiddleware

from .asgi_middleware import ROUTES, _bare, _starlette_cookie
from .harness import Role, Scenario, Settings, WorkloadResult
from .store_workloads import Built, Config, run_workloads


async def _coatcheck_cookie(stack: contextlib.AsyncExitStack, slug: str) -> Built:
    from coatcheck.security.sealing import new_key
    from coatcheck.stores import CookieStore

    manager = SessionManager(CookieStore([new_key()]))
    app = Starlette(routes=ROUTES, middleware=[Middleware(CoatcheckMiddleware, manager=manager)])
    return Built(app, "session", "__Host-session")


CONFIGS = [
    Config("bare (no sessions)", Role.BASELINE, _bare),
    Config("coatcheck cookie", Role.COATCHECK, _coatcheck_cookie, note="AES-256-GCM"),
    Config("starlette signed cookie", Role.PEER, _starlette_cookie, note="itsdangerous"),
]


async def run(settings: Settings, console: Console) -> list[WorkloadResult]:
    return await run_workloads(
        "cookie",
        "Cookie sessions",
        CONFIGS,
        settings,
        console,
        wire=None,
        notes=[],
        targets=[],
        fit_budget=False,
    )


SCENARIO = Scenario(
    name="cookie",
    description="Starlette app, in-process ASGI calls: coatcheck CookieStore (AES-256-GCM) vs "
    "Starlette's signed-cookie SessionMiddleware",
    packages=("coatcheck", "starlette", "itsdangerous", "cryptography"),
    run=run,
)
