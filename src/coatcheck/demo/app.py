"""Routes of the demo shop, built around one SessionManager the caller chooses.

The app reads the session that ``coatcheck.asgi.SessionMiddleware`` put in the scope and
only states intents (``session.login``, ``session.logout``); the middleware commits them.
The middleware also refuses forged form posts (CSRF) before any handler here runs: the
pages put a ``csrf_token`` field in every form, and a post from another site, or without
a valid token, is a 403 that changes nothing.
The manager is passed in rather than built here so the caller picks the store (a SQLite
file for ``coatcheck demo``, a temporary one in tests) and the listing and revocation on
``/account`` go through the same manager the middleware uses. The account routes live in
``coatcheck.demo.account``; the users (argon2id hashes) in ``coatcheck.demo.shop``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from coatcheck.demo import account, pages, privacy
from coatcheck.demo.shop import MAX_CART_ITEMS, PRODUCTS, Accounts
from coatcheck.demo.web import (
    accounts_of,
    form_field,
    manager_of,
    page,
    see_other,
    session_of,
)
from coatcheck.engine.manager import SessionManager
from coatcheck.integrations.starlette import browser_routes
from coatcheck.privacy.registry import PrivacyRegistry


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
    if len(session.get("cart", [])) >= MAX_CART_ITEMS:
        page = pages.message_page(session, "Cart full", f"At most {MAX_CART_ITEMS} items.")
        return HTMLResponse(page, status_code=400)
    # An append in the store: additions from several tabs at once all land (a write of
    # the whole list would keep only the last request's). The bound is checked on this
    # request's view, so racing additions may pass it by a few; max_data_bytes, enforced
    # by the store with the write, is the hard limit.
    session.append("cart", item)
    return see_other("/")


async def cart_clear(request: Request) -> Response:
    session_of(request).pop("cart", None)
    return see_other("/")


async def sign_in(request: Request) -> Response:
    """The sign-in page. Its form needs a CSRF token (a login form without one lets another
    site sign you in as its own user), so a visitor without a session gets one here: asking
    to sign in is the visitor's choice, unlike a plain look at the shop."""
    session = session_of(request)
    if session.user_id is not None:
        return see_other("/account")
    return page(pages.sign_in_page(session))


async def login(request: Request) -> Response:
    """Check the credentials (argon2id, in a worker thread) and state the login: the
    middleware then issues a new token and keeps the data (the anonymous cart)."""
    session = session_of(request)
    form = await request.form()
    username, password = form.get("username"), form.get("password")
    user = None
    if isinstance(username, str) and isinstance(password, str):
        name = username.strip().lower()
        user = await run_in_threadpool(accounts_of(request).authenticate, name, password)
    if user is None:
        failed = pages.sign_in_page(session, error="Wrong username or password.")
        return page(failed, 401)
    session.login(user, remember=form.get("remember") is not None)
    return see_other("/")


async def logout(request: Request) -> Response:
    session_of(request).logout()
    return see_other("/")


ROUTES = [
    *browser_routes(),  # /coatcheck/coatcheck.js and /coatcheck/keep-alive
    Route("/", home, methods=["GET"]),
    Route("/start", start, methods=["GET"]),
    Route("/cart/add", cart_add, methods=["POST"]),
    Route("/cart/clear", cart_clear, methods=["POST"]),
    Route("/login", sign_in, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    *account.ROUTES,
    *privacy.ROUTES,
]


def create_app(
    manager: SessionManager,
    accounts: Accounts | None = None,
    privacy: PrivacyRegistry | None = None,
) -> Starlette:
    """The demo shop as a Starlette app; wrap it in ``SessionMiddleware(app, manager=manager)``.
    ``accounts`` defaults to the demo users with their starting passwords; ``privacy`` is
    the deployment's registry that "Download my data" and "Erase my account" go through
    (None: the privacy page says they are not available)."""
    app = Starlette(routes=ROUTES)
    app.state.coatcheck_manager = manager
    app.state.demo_accounts = accounts if accounts is not None else Accounts()
    app.state.demo_privacy = privacy
    return app
