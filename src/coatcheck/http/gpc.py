"""Global Privacy Control's well-known resource, decided once for every edge.

A site that honours GPC says so at ``/.well-known/gpc.json`` with ``{"gpc": true,
"lastUpdate": "YYYY-MM-DD"}`` (the GPC specification, section 5). coatcheck honours the
signal on every edge (``Sec-GPC: 1`` refuses ``analytics`` and ``marketing``, see
``coatcheck.core.consent``), so each framework's helper route (``coatcheck.starlette.
gpc_route``, ``coatcheck.flask.gpc_blueprint``, ``coatcheck.django.gpc_urls``, the WSGI
``gpc_app``) and the session service serve this answer.
"""

from __future__ import annotations

import datetime
import json
from typing import Final

from coatcheck.errors import ConfigError
from coatcheck.http.browser import Answer

__all__ = ["GPC_PATH", "LAST_UPDATE", "gpc_answer", "gpc_document"]

GPC_PATH: Final = "/.well-known/gpc.json"
LAST_UPDATE: Final = "2026-12-07"
"""When coatcheck's handling of the signal last changed: the default ``lastUpdate``. An
application whose own handling changed later passes its date."""


def gpc_document(last_update: str = LAST_UPDATE) -> bytes:
    """The resource's JSON; ConfigError when ``last_update`` is not a ``YYYY-MM-DD`` date."""
    try:
        day = datetime.date.fromisoformat(last_update)
    except (TypeError, ValueError):
        raise ConfigError(f"GPC lastUpdate {last_update!r} is not a YYYY-MM-DD date") from None
    if len(last_update) != 10:
        raise ConfigError(f"GPC lastUpdate {last_update!r} is not a YYYY-MM-DD date")
    return json.dumps({"gpc": True, "lastUpdate": day.isoformat()}).encode()


def gpc_answer(last_update: str = LAST_UPDATE) -> Answer:
    """200 with the resource as ``application/json``, cacheable for a day."""
    body = gpc_document(last_update)
    return Answer(
        200,
        body,
        (
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("cache-control", "max-age=86400"),
            ("x-content-type-options", "nosniff"),
        ),
    )
