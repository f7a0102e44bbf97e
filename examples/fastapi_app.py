"""A small FastAPI JSON API on coatcheck: a visit counter, a cart, login / logout, an
account page, a sensitive action that needs a recent login, and "your devices".

Run it::

    pip install "coatcheck[fastapi]" uvicorn
    python examples/fastapi_app.py          # http://localhost:8000/docs

The store comes from ``COATCHECK_STORE`` (default ``sqlite:///fastapi-example.db``) and the
timeouts from ``COATCHECK_*`` variables (see ``SessionConfig.from_env``). Browsers keep the
``__Host-session`` cookie (Secure) on http://localhost; API clients without cookies send
``X-Session-Transport: bearer`` once, receive the token in ``X-Session-Token`` and then
send ``Authorization: Bearer <token>``. Sign in as alice / wonderland or bob / builder.

CSRF: coatcheck refuses a cookie client's POST, PUT, PATCH or DELETE without a CSRF token
(bearer clients need none: a browser never attaches their header to a forged request). A
JavaScript front end gets one from ``GET /csrf`` and sends it as ``X-CSRF-Token``; a login
changes the session's secret, so ``POST /login`` answers with the next token.
"""

from __future__ import annotations

import hmac
import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel

from coatcheck import SessionConfig, SessionManager
from coatcheck.integrations.fastapi import (
    CurrentSession,
    CurrentUser,
    get_manager,
    install,
    require_recent_auth,
)
from coatcheck.stores import from_url

USERS = {"alice": "wonderland", "bob": "builder"}
"""Demo accounts. A real app stores password hashes (argon2, scrypt), never passwords."""

PRODUCTS = {"tea": "Green tea", "mug": "Enamel mug", "scarf": "Wool scarf"}

RECENT_LOGIN = 300.0
"""Seconds after a login during which sensitive actions are allowed without signing in again."""


class Credentials(BaseModel):
    username: str
    password: str
    remember: bool = False


class Item(BaseModel):
    item: str


class Email(BaseModel):
    email: str


def create_app(manager: SessionManager | None = None) -> FastAPI:
    """The app; tests pass their own manager (store, clock), ``__main__`` builds one."""
    if manager is None:
        store = from_url(os.environ.get("COATCHECK_STORE", "sqlite:///fastapi-example.db"))
        manager = SessionManager(store, SessionConfig.from_env())
    app = FastAPI(title="coatcheck + FastAPI")
    install(app, manager)  # the session middleware and the JSON 401 bodies

    @app.get("/")
    async def index(session: CurrentSession) -> dict[str, Any]:
        # Counting visits writes on every call; reading the cart alone writes nothing.
        session["visits"] = session.get("visits", 0) + 1
        return {
            "visits": session["visits"],
            "user": session.user_id,
            "cart": session.get("cart", []),
        }

    @app.get("/csrf")
    async def csrf(session: CurrentSession) -> dict[str, str]:
        # Masked afresh at every call; every token of the session verifies.
        return {"csrf_token": session.csrf_token()}

    @app.post("/cart")
    async def add_to_cart(body: Item, session: CurrentSession) -> dict[str, Any]:
        if body.item not in PRODUCTS:
            raise HTTPException(404, detail=f"no product {body.item!r}")
        # In-place change: coatcheck sees it without any "modified" flag.
        session.setdefault("cart", []).append(body.item)
        return {"cart": session["cart"]}

    @app.post("/login")
    async def login(body: Credentials, session: CurrentSession) -> dict[str, Any]:
        expected = USERS.get(body.username)
        if expected is None or not hmac.compare_digest(expected.encode(), body.password.encode()):
            raise HTTPException(403, detail="wrong user name or password")
        session.login(body.username, remember=body.remember)  # new token; the cart stays
        return {
            "user": body.username,
            "cart": session.get("cart", []),
            "csrf_token": session.csrf_token(),  # login replaced the secret: the next token
        }

    @app.post("/logout")
    async def logout(session: CurrentSession) -> dict[str, Any]:
        session.logout()  # record deleted, cookie cleared
        return {"user": None}

    @app.get("/account")
    async def account(user_id: CurrentUser, session: CurrentSession) -> dict[str, Any]:
        return {"user": user_id, "cart": session.get("cart", []), "handle": session.handle}

    @app.post("/account/email")
    async def change_email(
        body: Email, user_id: Annotated[str, Depends(require_recent_auth(RECENT_LOGIN))]
    ) -> dict[str, Any]:
        # Sensitive: only within five minutes of signing in.
        return {"user": user_id, "email": body.email, "changed": True}

    @app.get("/account/devices")
    async def devices(
        user_id: CurrentUser,
        session: CurrentSession,
        manager: Annotated[SessionManager, Depends(get_manager)],
    ) -> list[dict[str, Any]]:
        return [
            {
                "handle": info.handle,
                "current": info.handle == session.handle,
                "user_agent": info.user_agent,
                "last_seen_at": info.last_seen_at,
            }
            for info in await manager.list_user_sessions(user_id)
        ]

    @app.post("/account/devices/{handle}/revoke")
    async def revoke_device(
        handle: str,
        user_id: CurrentUser,
        manager: Annotated[SessionManager, Depends(get_manager)],
    ) -> dict[str, Any]:
        mine = {info.handle for info in await manager.list_user_sessions(user_id)}
        if handle not in mine:  # never end another user's session by guessing a handle
            raise HTTPException(404, detail="no such session")
        return {"revoked": await manager.revoke(handle)}

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="localhost", port=8000)
