"""A small Litestar JSON API on coatcheck: a visit counter, a cart, login / logout.

Litestar runs plain ASGI middleware, so ``coatcheck.asgi.SessionMiddleware`` is all it
takes (``DefineMiddleware`` passes it the manager). The session is at
``request.scope["session"]``, which is also what Litestar's ``request.session`` returns:
read and write it like a dict, and use coatcheck's intents on it (``login``, ``logout``,
``regenerate``). Do not call ``request.set_session()`` or ``request.clear_session()``:
they replace the coatcheck session in the scope, so nothing would be saved; log out with
``session.logout()`` instead.

Run it::

    pip install coatcheck litestar uvicorn
    python examples/litestar_app.py          # http://localhost:8000/schema/swagger

The store comes from ``COATCHECK_STORE`` (default ``sqlite:///litestar-example.db``).
Sign in as alice / wonderland or bob / builder.

CSRF: the middleware refuses a cookie client's POST, PUT, PATCH or DELETE without a CSRF
token. A JavaScript front end gets one from ``GET /csrf`` and sends it as ``X-CSRF-Token``;
a login changes the session's secret, so ``POST /login`` answers with the next token.
(Litestar's own ``csrf_config`` is not needed on top.)
"""

from __future__ import annotations

import hmac
import os
from typing import Annotated, Any

from litestar import Litestar, Request, get, post
from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.params import Body

from coatcheck import Session, SessionConfig, SessionManager
from coatcheck.integrations.asgi import SessionMiddleware
from coatcheck.stores import from_url

USERS = {"alice": "wonderland", "bob": "builder"}
"""Demo accounts. A real app stores password hashes (argon2, scrypt), never passwords."""

PRODUCTS = {"tea": "Green tea", "mug": "Enamel mug", "scarf": "Wool scarf"}

JSONObject = Annotated[dict[str, str], Body(media_type=RequestEncodingType.JSON)]
"""A JSON request body (``data``) of string fields."""


def session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Session:
    """The coatcheck Session the middleware loaded for this request."""
    session: Session = connection.scope["session"]  # type: ignore[typeddict-item]
    return session


def login_required(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A Litestar guard: 401 unless the session is logged in."""
    if not session_of(connection).is_authenticated:
        raise NotAuthorizedException(detail="login_required")


@get("/")
async def index(request: Request[Any, Any, Any]) -> dict[str, Any]:
    session = session_of(request)
    # Counting visits writes on every call; reading the cart alone writes nothing.
    session["visits"] = session.get("visits", 0) + 1
    return {"visits": session["visits"], "user": session.user_id, "cart": session.get("cart", [])}


@get("/csrf")
async def csrf(request: Request[Any, Any, Any]) -> dict[str, str]:
    # Masked afresh at every call; every token of the session verifies.
    return {"csrf_token": session_of(request).csrf_token()}


@post("/cart", status_code=200)
async def add_to_cart(request: Request[Any, Any, Any], data: JSONObject) -> dict[str, Any]:
    item = data.get("item", "")
    if item not in PRODUCTS:
        raise PermissionDeniedException(detail=f"no product {item!r}")
    session = session_of(request)
    session.setdefault("cart", []).append(item)  # in place: coatcheck sees it
    return {"cart": session["cart"]}


@post("/login", status_code=200)
async def login(request: Request[Any, Any, Any], data: JSONObject) -> dict[str, Any]:
    username, password = data.get("username", ""), data.get("password", "")
    expected = USERS.get(username)
    if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
        raise PermissionDeniedException(detail="wrong user name or password")
    session = session_of(request)
    session.login(username)  # a new token at commit; the anonymous cart comes along
    return {
        "user": username,
        "cart": session.get("cart", []),
        "csrf_token": session.csrf_token(),  # login replaced the secret: the next token
    }


@post("/logout", status_code=200)
async def logout(request: Request[Any, Any, Any]) -> dict[str, Any]:
    session_of(request).logout()  # record deleted, cookie cleared
    return {"user": None}


@get("/account", guards=[login_required])
async def account(request: Request[Any, Any, Any]) -> dict[str, Any]:
    session = session_of(request)
    return {"user": session.user_id, "cart": session.get("cart", [])}


def create_app(manager: SessionManager | None = None) -> Litestar:
    """The app; tests pass their own manager (store, clock), ``__main__`` builds one."""
    if manager is None:
        store = from_url(os.environ.get("COATCHECK_STORE", "sqlite:///litestar-example.db"))
        manager = SessionManager(store, SessionConfig.from_env())
    return Litestar(
        route_handlers=[index, csrf, add_to_cart, login, logout, account],
        middleware=[DefineMiddleware(SessionMiddleware, manager=manager)],
    )


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="localhost", port=8000)
