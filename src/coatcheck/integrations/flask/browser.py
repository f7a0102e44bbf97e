"""The browser side for Flask: ``app.register_blueprint(browser_blueprint())`` serves
``coatcheck.js`` and its keep-alive under ``/coatcheck``, answered by
``coatcheck.http.browser`` as on every edge. The keep-alive's POST passes the CSRF check
of ``init_app`` like any other."""

from __future__ import annotations

import flask

from coatcheck.http import browser, gpc
from coatcheck.integrations.flask.session_interface import current_session

__all__ = ["browser_blueprint", "gpc_blueprint"]


def _response(answer: browser.Answer) -> flask.Response:
    response = flask.Response(answer.body, status=answer.status)
    response.headers.clear()  # no default text/html on a 204 or a 304
    response.headers.extend(answer.headers)
    return response


def _script() -> flask.Response:
    return _response(browser.script_answer(flask.request.headers.get("If-None-Match")))


def _keep_alive() -> flask.Response:
    return _response(browser.keep_alive(current_session().core, flask.request.method))


def browser_blueprint(url_prefix: str = browser.PREFIX) -> flask.Blueprint:
    """A blueprint named ``coatcheck`` with ``coatcheck.js`` (GET, HEAD) and the
    keep-alive (POST extends a signed-in session, GET reports) under ``url_prefix``."""
    blueprint = flask.Blueprint("coatcheck", __name__, url_prefix=url_prefix.rstrip("/"))
    blueprint.add_url_rule(f"/{browser.SCRIPT_NAME}", "script", _script, methods=["GET"])
    blueprint.add_url_rule(
        f"/{browser.KEEP_ALIVE_NAME}", "keep_alive", _keep_alive, methods=["GET", "POST"]
    )
    return blueprint


def gpc_blueprint(last_update: str = gpc.LAST_UPDATE) -> flask.Blueprint:
    """A blueprint named ``coatcheck_gpc`` serving ``/.well-known/gpc.json``: this site
    honours Global Privacy Control (``app.register_blueprint(gpc_blueprint())``)."""
    answer = gpc.gpc_answer(last_update)  # checked now, at start-up
    blueprint = flask.Blueprint("coatcheck_gpc", __name__)

    def _gpc() -> flask.Response:
        return _response(answer)

    blueprint.add_url_rule(gpc.GPC_PATH, "gpc", _gpc, methods=["GET"])
    return blueprint
