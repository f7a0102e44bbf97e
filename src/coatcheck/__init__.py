"""coatcheck: server-side sessions for Python web apps, secure by default.

The client holds a ticket (a 256-bit token); the store keeps the coat (the session) filed
under the ticket's SHA-256. ``import coatcheck`` needs nothing beyond the standard library;
each web framework and store client is an optional extra.
"""

from __future__ import annotations

from .client import ClientInfo
from .config import SessionConfig
from .errors import (
    CoatcheckError,
    ConfigError,
    SessionCommittedError,
    SessionDataError,
    StoreUnavailable,
)
from .events import LoggingSink, MemorySink, SessionEvent
from .manager import CommitResult, SessionInfo, SessionManager
from .model import Session, SessionRecord

__version__ = "0.1.0"

__all__ = [
    "ClientInfo",
    "CoatcheckError",
    "CommitResult",
    "ConfigError",
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
