"""coatcheck: server-side sessions for Python web apps, secure by default.

The client holds a ticket (a 256-bit token); the store keeps the coat (the session) filed
under the ticket's SHA-256. ``import coatcheck`` needs nothing beyond the standard library;
each web framework and store client is an optional extra.

The names below are imported on first use (PEP 562), so importing one layer (a store, the
core) does not load the layers above it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coatcheck.core.client import ClientInfo
    from coatcheck.core.config import SessionConfig
    from coatcheck.core.events import LoggingSink, MemorySink, SessionEvent
    from coatcheck.core.record import SessionRecord
    from coatcheck.core.session import Session
    from coatcheck.engine.manager import SessionManager
    from coatcheck.engine.results import CommitResult, SessionInfo
    from coatcheck.errors import (
        CoatcheckError,
        ConfigError,
        InvalidUserId,
        SessionCommittedError,
        SessionDataError,
        StoreUnavailable,
    )

__version__ = "0.1.0"

_HOMES = {
    "ClientInfo": "coatcheck.core.client",
    "SessionConfig": "coatcheck.core.config",
    "LoggingSink": "coatcheck.core.events",
    "MemorySink": "coatcheck.core.events",
    "SessionEvent": "coatcheck.core.events",
    "SessionRecord": "coatcheck.core.record",
    "Session": "coatcheck.core.session",
    "CommitResult": "coatcheck.engine.results",
    "SessionInfo": "coatcheck.engine.results",
    "SessionManager": "coatcheck.engine.manager",
    "CoatcheckError": "coatcheck.errors",
    "ConfigError": "coatcheck.errors",
    "InvalidUserId": "coatcheck.errors",
    "SessionCommittedError": "coatcheck.errors",
    "SessionDataError": "coatcheck.errors",
    "StoreUnavailable": "coatcheck.errors",
}

__all__ = [
    "ClientInfo",
    "CoatcheckError",
    "CommitResult",
    "ConfigError",
    "InvalidUserId",
    "LoggingSink",
    "MemorySink",
    "Session",
    "SessionCommittedError",
    "SessionConfig",
    "SessionDataError",
    "SessionEvent",
    "SessionInfo",
    "SessionManager",
    "SessionRecord",
    "StoreUnavailable",
    "__version__",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
