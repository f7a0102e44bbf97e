"""Helpers for the tests of apps that use coatcheck.

- ``FrozenClock``: a clock that moves only when the test says so. Hand it to the
  ``SessionManager`` (``SessionManager(store, clock=clock)``) and expire sessions with
  ``clock.advance(config.idle_timeout + 1)`` instead of sleeping.
- ``force_login(manager, user_id, data=...)``: a logged-in session created straight through
  the manager, as Django's ``Client.force_login`` does; returns its token (``aforce_login``
  for async tests).
- ``login_client(client, manager, user, data=...)``: the same, and the token put where the
  test client sends it from: an httpx ``Client`` / ``AsyncClient`` (Starlette's and
  FastAPI's ``TestClient`` are httpx clients), Flask's test client or Django's test
  ``Client`` / ``AsyncClient``. The client can then also POST: a CSRF token for the new
  session goes into its default headers, as a page would give one to its JavaScript.
- ``csrf_header(manager, token)``: that CSRF header, for tests that build requests
  themselves.

The session is a real one in the app's own store, with the real token rules (only the
SHA-256 of the token is stored, the login is timestamped, the user's index is updated),
so a test that uses these helpers tests the app, not a shortcut around it.

Nothing here imports a web framework or an HTTP client: each adapter recognises its client
only if that client's library is already imported, so ``import coatcheck.testing`` works
whatever the app is built with.

httpx and ``Secure`` cookies. coatcheck's default cookie is ``__Host-session``, which is
``Secure``, and httpx, like a browser, never sends a Secure cookie over plain http. Starlette's
``TestClient`` talks to ``http://testserver`` by default, so create it with
``TestClient(app, base_url="https://testserver")``: then the cookie set here, and every
cookie the app sets later (a new token at login, a cleared one at logout), travel as they
would in production (its ``websocket_connect`` joins relative paths to ``ws://``: pass
``"wss://testserver/path"``). ``login_client`` refuses an http base URL for a Secure
cookie rather than leave the client silently logged out. Flask's and Django's test clients
ignore ``Secure``, so they need nothing.

A login through the app itself (``session.login``) drops the session's CSRF secret, as it
must; a test that logs in again that way fetches a new token from the app.

The parts: ``clock`` (``FrozenClock``), ``logins`` (``force_login``, ``csrf_header``) and
``clients`` (``login_client`` and the registry of test-client adapters:
``httpx_client``, ``flask_client``, ``django_client``; ``clients.register_client`` adds
one). May import anything in coatcheck (this is the top layer), but a framework or HTTP
client only inside the adapter that serves it, and only once the test imported it.
"""

from coatcheck.testing.clients import alogin_client, login_client, register_client
from coatcheck.testing.clock import FrozenClock
from coatcheck.testing.django_client import DjangoClient
from coatcheck.testing.flask_client import FlaskClient
from coatcheck.testing.httpx_client import HttpxClient
from coatcheck.testing.logins import aforce_login, csrf_header, force_login

__all__ = [
    "FrozenClock",
    "aforce_login",
    "alogin_client",
    "csrf_header",
    "force_login",
    "login_client",
]

# Each registration goes first, so this leaves Django, Flask, httpx in that order; the
# kinds are disjoint, the order only decides who answers first.
for _adapter in (HttpxClient(), FlaskClient(), DjangoClient()):
    register_client(_adapter)
del _adapter
