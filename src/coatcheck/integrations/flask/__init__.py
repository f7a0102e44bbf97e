"""Flask integration: ``init_app(app, manager)`` makes ``flask.session`` a coatcheck session.

Flask's idioms keep working on top of the coatcheck ``Session``:

- ``session["k"] = v``, ``flash()`` / ``get_flashed_messages()`` (values are JSON, so a
  flashed ``(category, message)`` pair comes back as a list, which unpacks the same way);
- ``session.new`` (no stored session backed this request) and ``session.modified``
  (writes, removals and in-place changes of lists and dicts are all detected, so setting
  ``modified = True`` is accepted but never needed);
- ``session.permanent`` means what it means in Flask, a cookie that outlives the browser,
  which in coatcheck is a remember-me login (``remember_timeout``, no idle limit). It takes
  effect at a login, the only moment a persistent cookie is issued: set it before or after
  ``session.login(...)`` in the same request. On an anonymous session it changes nothing,
  so the blanket ``session.permanent = True`` some apps set on every request never turns
  the idle timeout off for visitors. Reading it gives the pending choice, else whether the
  current login is remembered.

CSRF: ``init_app`` checks every unsafe request (POST, PUT, PATCH, DELETE, ...) before the
view runs, with the rules shared by every edge: ``Sec-Fetch-Site`` and ``Origin`` first,
then the token from the ``X-CSRF-Token`` header or the ``csrf_token`` form field. Templates
put it in forms with ``{{ csrf_token() }}``::

    <form method="post"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">

A refused request raises ``CSRFError`` (a 403 naming the reason; an ``errorhandler(403)``
may restyle it). Views that authenticate by other means (a signed webhook) opt out with
``@csrf_exempt``; ``SessionConfig(csrf=False)`` turns the check off.

Same-session requests that read a value and write it back (a cart) can run one at a time:
``@locked_session`` on the view, or ``SessionConfig(lock_sessions=True)`` for every view;
a lock not had within ``lock_timeout`` is a 409 with ``Retry-After``.

Flask's ``SESSION_COOKIE_*`` and ``PERMANENT_SESSION_LIFETIME`` settings are not read: the
cookie and the timeouts come from the manager's ``SessionConfig``, the single source of
truth for every edge. No ``secret_key`` is needed for sessions (the token is random, not
signed data).

The parts: ``session`` (``FlaskSession``, ``UnavailableSession``), ``session_interface``
(load and commit), ``csrf``, ``auth`` (the 401 decorators), ``locking``
(``locked_session``), ``extension`` (``init_app``) and ``browser`` (``browser_blueprint``:
coatcheck.js and its keep-alive). May import:
``coatcheck.http`` and everything below it, and Flask / werkzeug. Never another framework.
"""

from coatcheck.integrations.flask.auth import (
    AuthenticationRequired,
    login_required,
    require_level,
    require_recent_auth,
)
from coatcheck.integrations.flask.browser import browser_blueprint, gpc_blueprint
from coatcheck.integrations.flask.csrf import CSRFError, csrf_exempt, csrf_token
from coatcheck.integrations.flask.extension import init_app
from coatcheck.integrations.flask.locking import locked_session
from coatcheck.integrations.flask.session import FlaskSession, UnavailableSession
from coatcheck.integrations.flask.session_interface import (
    EXTENSION_KEY as EXTENSION_KEY,  # not public; coatcheck.testing finds the manager by it
)
from coatcheck.integrations.flask.session_interface import (
    CoatcheckSessionInterface,
    current_session,
)

__all__ = [
    "AuthenticationRequired",
    "CSRFError",
    "CoatcheckSessionInterface",
    "FlaskSession",
    "UnavailableSession",
    "browser_blueprint",
    "csrf_exempt",
    "csrf_token",
    "current_session",
    "gpc_blueprint",
    "init_app",
    "locked_session",
    "login_required",
    "require_level",
    "require_recent_auth",
]
