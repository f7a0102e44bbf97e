"""A small Starlette app that exercises every part of the engine, for HTTP tests.

Routes are deliberately plain: each one does one thing to the session, so a test reads as
a sequence of requests and what the client and the store saw.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from coatcheck import SessionManager
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.integrations.starlette import require_level, require_recent_auth, require_user


def session_view(request: Request) -> dict[str, Any]:
    session = request.session
    return {
        "data": dict(session),
        "user_id": session.user_id,  # type: ignore[attr-defined]
        "handle": session.handle,  # type: ignore[attr-defined]
        "is_new": session.is_new,  # type: ignore[attr-defined]
        "auth_at": session.auth_at,  # type: ignore[attr-defined]
    }


def create_shop(manager: SessionManager, *, barrier_size: int = 50) -> Starlette:
    state: dict[str, Any] = {}

    async def noop(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def read(request: Request) -> Response:
        return JSONResponse(session_view(request))

    async def csrf(request: Request) -> Response:
        """The page a form would be on: its CSRF token (creating the session's secret)."""
        return PlainTextResponse(request.session.csrf_token())  # type: ignore[attr-defined]

    async def set_value(request: Request) -> Response:
        body = await request.json()
        for key, value in body.items():
            request.session[key] = value
        return JSONResponse(session_view(request))

    async def cart_add(request: Request) -> Response:
        item = request.query_params["item"]
        request.session.setdefault("cart", []).append(item)
        return JSONResponse(session_view(request))

    async def login(request: Request) -> Response:
        remember = request.query_params.get("remember") == "1"
        level = int(request.query_params.get("level", "1"))
        request.session.login(request.query_params["user"], remember=remember, level=level)  # type: ignore[attr-defined]
        return JSONResponse(session_view(request))

    async def reauthenticate(request: Request) -> Response:
        level = request.query_params.get("level")
        request.session.reauthenticate(level=int(level) if level else None)  # type: ignore[attr-defined]
        return JSONResponse(session_view(request))

    @require_recent_auth(300)
    async def change_email(request: Request) -> Response:
        return JSONResponse({"changed": True})

    @require_level(2)
    async def payout(request: Request) -> Response:
        return JSONResponse({"paid": True})

    @require_user
    async def account(request: Request) -> Response:
        return JSONResponse({"user": request.session.user_id})  # type: ignore[attr-defined]

    async def logout(request: Request) -> Response:
        request.session.logout()  # type: ignore[attr-defined]
        if "flash" in request.query_params:
            request.session["flash"] = request.query_params["flash"]
        return JSONResponse(session_view(request))

    async def regenerate(request: Request) -> Response:
        request.session.regenerate()  # type: ignore[attr-defined]
        return JSONResponse(session_view(request))

    async def bad_value(request: Request) -> Response:
        request.session["when"] = datetime.datetime.now(tz=datetime.UTC)
        return PlainTextResponse("set")

    async def together(request: Request) -> Response:
        """Wait until ``barrier_size`` requests have loaded the session, then write."""
        barrier = state.setdefault("barrier", asyncio.Barrier(barrier_size))
        request.session[request.query_params["key"]] = request.query_params["key"]
        async with asyncio.timeout(20):
            await barrier.wait()
        return PlainTextResponse("ok")

    async def sessions(request: Request) -> Response:
        user = request.session.user_id  # type: ignore[attr-defined]
        if user is None:
            return PlainTextResponse("login first", status_code=401)
        infos = await manager.list_user_sessions(user)
        return JSONResponse([dataclasses.asdict(info) for info in infos])

    async def revoke(request: Request) -> Response:
        ok = await manager.revoke(request.query_params["handle"])
        return JSONResponse({"revoked": ok})

    async def revoke_others(request: Request) -> Response:
        session = request.session
        count = await manager.revoke_user(session.user_id, except_handle=session.handle)  # type: ignore[attr-defined]
        return JSONResponse({"revoked": count})

    async def late_write(request: Request) -> Response:
        """Writes after the response started: must raise, not vanish."""

        async def body() -> Any:
            yield b"start;"
            try:
                request.session["late"] = 1
            except Exception as exc:
                yield type(exc).__name__.encode()

        return StreamingResponse(body())

    routes = [
        Route("/reauthenticate", reauthenticate, methods=["POST"]),
        Route("/account", account),
        Route("/account/email", change_email, methods=["POST"]),
        Route("/payout", payout, methods=["POST"]),
        Route("/noop", noop),
        Route("/read", read),
        Route("/csrf", csrf),
        Route("/set", set_value, methods=["POST"]),
        Route("/cart/add", cart_add, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/regenerate", regenerate, methods=["POST"]),
        Route("/bad", bad_value, methods=["POST"]),
        Route("/together", together, methods=["POST"]),
        Route("/sessions", sessions),
        Route("/revoke", revoke, methods=["POST"]),
        Route("/revoke-others", revoke_others, methods=["POST"]),
        Route("/late", late_write),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, manager=manager)])
