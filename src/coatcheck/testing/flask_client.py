"""Flask's (werkzeug's) test client.

The manager may be left out: it is the one ``coatcheck.flask.init_app`` installed on the
client's app. The cookie is set for the host the client sends requests to
(``SERVER_NAME``, else ``localhost``); werkzeug's client ignores ``Secure``. The CSRF token
goes into ``client.environ_base``, as a header every request carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coatcheck.core.config import SessionConfig
from coatcheck.engine.manager import SessionManager
from coatcheck.testing.clients import Resolved, instance_of, plain_user

__all__ = ["FlaskClient"]


def _set_flask_cookie(client: Any, config: SessionConfig, token: str, domain: str | None) -> None:
    if domain is None:
        # The host Flask's test client sends requests to: SERVER_NAME, else "localhost".
        app: Any = getattr(client, "application", None)
        server_name = app.config.get("SERVER_NAME") if app is not None else None
        domain = str(server_name).partition(":")[0] if server_name else "localhost"
    client.set_cookie(config.cookie_name, token, domain=domain, path=config.path)


class FlaskClient:
    """The adapter for ``werkzeug.test.Client`` (``app.test_client()``)."""

    def recognises(self, client: object) -> bool:
        return instance_of(client, "werkzeug.test", "Client")

    def resolve(
        self, client: Any, manager: SessionManager | None, user: Any, data: Mapping[str, Any] | None
    ) -> Resolved:
        if manager is None:
            from coatcheck.integrations.flask import EXTENSION_KEY

            app: Any = getattr(client, "application", None)
            interface = app.extensions.get(EXTENSION_KEY) if app is not None else None
            if interface is None:
                raise ValueError("this Flask app has no coatcheck session: call init_app() first")
            manager = interface.manager
        return plain_user(manager, user, data)

    def deliver(
        self,
        client: Any,
        manager: SessionManager,
        token: str,
        csrf_value: str | None,
        url: str | None,
        domain: str | None,
    ) -> None:
        config = manager.config
        _set_flask_cookie(client, config, token, domain)
        if csrf_value is not None:
            environ_key = "HTTP_" + config.csrf_header.upper().replace("-", "_")
            client.environ_base[environ_key] = csrf_value
