"""Routes of the demo shop, built around one SessionManager the caller chooses.

The app reads the session that ``coatcheck.asgi.SessionMiddleware`` put in the scope and
only states intents (``session.login``, ``session.logout``); the middleware commits them.
The middleware also refuses forged form posts (CSRF) before any handler here runs: the
pages put a ``csrf_token`` field in every form, and a post from another site, or without
a valid token, is a 403 that changes nothing.
The manager is passed in rather than built here so the caller picks the store (a SQLite
file for ``coatcheck demo``, a temporary one in tests) and the listing and revocation on
``/sessions`` go through the same manager the middleware uses.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from coatcheck.core.session import Session
from coatcheck.demo import pages
from coatcheck.demo.shop import MAX_CART_ITEMS, PRODUCTS, authenticate
from coatcheck.engine.manager import SessionManager
from coatcheck.integrations.starlette import browser_routes


def session_of(request: Request) -> Session:
    """The coatcheck session of this request (fails loudly without the middleware)."""
    session = request.scope.get("session")
    if not isinstance(session, Session):
        raise RuntimeError("wrap the demo app in coatcheck.asgi.SessionMiddleware")
    return session


async def form_field(request: Request, name: str) -> str | None:
    value = (await request.form()).get(name)
    return value if isinstance(value, str) else None


def see_other(path: str) -> RedirectResponse:
    """303: the browser follows with a GET, so reloading never resubmits a form."""
    return RedirectResponse(path, status_code=303)


def manager_of(request: Request) -> SessionManager:
    """The manager ``create_app`` was given, kept in the app's state."""
    manager = request.app.state.coatcheck_manager
    assert isinstance(manager, SessionManager)
    return manager


async def home(request: Request) -> Response:
    """The shop. It only reads the session: a plain GET / writes nothing to the store and
    sends no cookie (the middleware's touch aside), so crawlers and passers-by cost the
    server nothing. A visitor without a session sees the catalogue and "Start shopping"."""
    manager = manager_of(request)
    session = session_of(request)
    return HTMLResponse(pages.home_page(session, manager.config, manager.clock()))


async def start(request: Request) -> Response:
    """ "Start shopping": the session begins here, with the CSRF secret every form's token
    is made from (forms cannot be posted without one). An existing session is kept."""
    session = session_of(request)
    if session.is_new:
        session.csrf_token()
    return see_other("/")


async def cart_add(request: Request) -> Response:
    session = session_of(request)
    item = await form_field(request, "item")
    if item not in PRODUCTS:
        page = pages.message_page(session, "Unknown product", "Pick a product from the list.")
        return HTMLResponse(page, status_code=400)
    cart = list(session.get("cart", []))
    if len(cart) >= MAX_CART_ITEMS:
        page = pages.message_page(session, "Cart full", f"At most {MAX_CART_ITEMS} items.")
        return HTMLResponse(page, status_code=400)
    session["cart"] = [*cart, item]
    return see_other("/")


async def cart_clear(request: Request) -> Response:
    session_of(request).pop("cart", None)
    return see_other("/")


async def login(request: Request) -> Response:
    manager = manager_of(request)
    session = session_of(request)
    form = await request.form()
    username = form.get("username")
    password = form.get("password")
    user = None
    if isinstance(username, str) and isinstance(password, str):
        user = authenticate(username.strip().lower(), password)
    if user is None:
        page = pages.home_page(
            session, manager.config, manager.clock(), error="Wrong username or password."
        )
        return HTMLResponse(page, status_code=401)
    session.login(user, remember=form.get("remember") is not None)
    return see_other("/")


async def logout(request: Request) -> Response:
    session_of(request).logout()
    return see_other("/")


async def sessions(request: Request) -> Response:
    manager = manager_of(request)
    session = session_of(request)
    if session.user_id is None:
        return see_other("/")
    infos = await manager.list_user_sessions(session.user_id)
    return HTMLResponse(pages.sessions_page(session, infos, manager.clock()))


async def revoke(request: Request) -> Response:
    manager = manager_of(request)
    session = session_of(request)
    user = session.user_id
    if user is None:
        return see_other("/")
    handle = await form_field(request, "handle")
    if handle is not None and handle == session.handle:
        session.logout()  # deletes the record and clears this browser's cookie
        return see_other("/")
    # Only handles of this user's own sessions: a handle is public (it appears in
    # logs and on pages), so knowing one must not let anyone end someone else's session.
    owned = {info.handle for info in await manager.list_user_sessions(user)}
    if handle in owned:
        await manager.revoke(handle)
    return see_other("/sessions")


async def revoke_others(request: Request) -> Response:
    manager = manager_of(request)
    session = session_of(request)
    if session.user_id is not None:
        await manager.revoke_user(session.user_id, except_handle=session.handle)
    return see_other("/sessions")


ROUTES = [
    *browser_routes(),  # /coatcheck/coatcheck.js and /coatcheck/keep-alive
    Route("/", home, methods=["GET"]),
    Route("/start", start, methods=["GET"]),
    Route("/cart/add", cart_add, methods=["POST"]),
    Route("/cart/clear", cart_clear, methods=["POST"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/sessions", sessions, methods=["GET"]),
    Route("/sessions/revoke", revoke, methods=["POST"]),
    Route("/sessions/revoke-others", revoke_others, methods=["POST"]),
]


def create_app(manager: SessionManager) -> Starlette:
    """The demo shop as a Starlette app; wrap it in ``SessionMiddleware(app, manager=manager)``."""
    app = Starlette(routes=ROUTES)
    app.state.coatcheck_manager = manager
    return app
