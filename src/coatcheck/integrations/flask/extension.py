"""``init_app``: the one call that wires coatcheck into a Flask app.

It installs the session interface, a teardown hook (which frees a session lock that no save
freed), one ``before_request`` hook (the 503 guard, then the
CSRF check: one hook because Flask pays a lookup and a coroutine-function test per hook on
every request) and the ``csrf_token()`` template function.
"""

from __future__ import annotations

from typing import Any

import flask

from coatcheck.engine.manager import SessionManager
from coatcheck.integrations.flask.csrf import check_csrf, csrf_token
from coatcheck.integrations.flask.locking import release
from coatcheck.integrations.flask.session_interface import (
    EXTENSION_KEY,
    CoatcheckSessionInterface,
    refuse_unavailable,
)

__all__ = ["init_app"]


def _template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token}


def init_app(app: flask.Flask, manager: SessionManager) -> CoatcheckSessionInterface:
    """Install coatcheck as ``app``'s session interface (``flask.session`` becomes a
    FlaskSession), the 503 guard, the CSRF check of unsafe requests and the
    ``csrf_token()`` template function. When the store fails as the session opens, no view
    runs and an ``errorhandler(503)`` of the app may restyle the page (without one it is
    the short plain text every edge sends). When it fails at save, the response is
    already built, so it is replaced in place by that plain 503."""
    interface = CoatcheckSessionInterface(manager)
    check = interface.csrf
    proxies = interface.proxies

    def guard_request() -> None:
        refuse_unavailable()
        check_csrf(check, proxies)

    app.session_interface = interface
    app.extensions[EXTENSION_KEY] = interface
    app.before_request_funcs.setdefault(None, []).insert(0, guard_request)
    app.context_processor(_template_globals)

    def release_lock(exc: BaseException | None) -> None:
        """The session lock, if no save freed it (an error before the response)."""
        if interface.locks is not None:
            release(interface.locks, flask.request.environ)

    app.teardown_request(release_lock)
    return interface
