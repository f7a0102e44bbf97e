"""``flask.session`` under coatcheck: Flask's session protocol over a coatcheck Session,
and the stand-in served while the store is down.

Flask's idioms keep working on top of the coatcheck ``Session``: item access, ``flash()``,
``session.new`` and ``session.modified`` (in-place changes are detected, so setting
``modified = True`` is accepted but never needed), and ``session.permanent``, which means a
cookie that outlives the browser: in coatcheck a remember-me login. It takes effect at a
login, the only moment a persistent cookie is issued, so the blanket
``session.permanent = True`` some apps set on every request never turns the idle timeout
off for visitors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask.sessions import NullSession, SessionMixin

from coatcheck.core.record import UserId
from coatcheck.core.session import Session
from coatcheck.engine.results import CommitResult
from coatcheck.http.refusals import Refusal

__all__ = ["FlaskSession", "UnavailableSession"]


class FlaskSession(SessionMixin):
    """``flask.session`` under coatcheck: Flask's session protocol over a coatcheck Session.

    The mapping, ``login`` / ``logout`` / ``regenerate`` and the read-only facts
    (``user_id``, ``handle``, ``auth_at``, ...) are the coatcheck Session's, available as
    ``core`` for code shared with other edges.
    """

    def __init__(self, core: Session) -> None:
        self.core = core
        self.accessed = False
        self._permanent: bool | None = None
        self._modified = False
        self._saving = False
        self._result: CommitResult | None = None
        self._refusal: Refusal | None = None
        """The answer of a refused commit (503, 429, 403); None while none was refused,
        including when the commit raised the application's own error (data that is not
        JSON): that stays Flask's 500."""

    # -- mapping ---------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.core[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.core[key] = value

    def __delitem__(self, key: str) -> None:
        del self.core[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.core)

    def __len__(self) -> int:
        return len(self.core)

    def __contains__(self, key: object) -> bool:
        return key in self.core

    def __repr__(self) -> str:
        return f"<FlaskSession {self.core!r}>"

    # -- atomic operations, applied in the store (see coatcheck.Session) ------------------
    def incr(self, key: str, by: int = 1) -> int:
        """Add ``by`` to the integer under ``key`` in the store; the new value."""
        return self.core.incr(key, by)

    def append(self, key: str, value: Any) -> None:
        """Append ``value`` to the list under ``key`` in the store (concurrent appends
        all land)."""
        self.core.append(key, value)

    def add_to_set(self, key: str, value: Any) -> None:
        """``append``, unless the stored list already holds ``value``."""
        self.core.add_to_set(key, value)

    # -- Flask's session attributes ----------------------------------------------------
    @property
    def new(self) -> bool:  # type: ignore[override]
        """True when no stored session backed this request."""
        return self.core.is_new

    @property
    def modified(self) -> bool:
        return self._modified or self.core.modified

    @modified.setter
    def modified(self, value: bool) -> None:
        # Accepted for compatibility; coatcheck detects changes (even in place) by itself.
        self._modified = bool(value)

    @property
    def permanent(self) -> bool:
        if self._permanent is not None:
            return self._permanent
        return self.core.remember

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self._permanent = bool(value)
        core = self.core
        if core.intents.login and core.user_id is not None:
            # Only the remember choice changes: logging in again would reset the level
            # (and the CSRF secret) that the pending login set.
            core.set_remember(self._permanent)

    # -- coatcheck intents and facts ---------------------------------------------------
    def login(self, user_id: UserId, *, remember: bool | None = None, level: int = 1) -> None:
        """Authenticate as ``user_id`` (new token at commit) at assurance ``level``.
        ``remember`` defaults to ``permanent`` when set in this request, else False."""
        if remember is None:
            remember = bool(self._permanent)
        self.core.login(user_id, remember=remember, level=level)

    def reauthenticate(self, *, level: int | None = None) -> None:
        """A fresh authentication of the current user (step-up): new token and
        ``auth_at``, and ``level`` if given."""
        self.core.reauthenticate(level=level)

    def logout(self) -> None:
        """End the session (record deleted, cookie cleared); later writes start a new
        anonymous one, so ``flash("Logged out")`` after ``logout()`` still shows."""
        self._permanent = None
        self.core.logout()

    def regenerate(self) -> None:
        """New token for the same session at commit (privilege change)."""
        self.core.regenerate()

    def csrf_token(self) -> str:
        """A CSRF token for a form or header, masked afresh at every call."""
        return self.core.csrf_token()

    @property
    def user_id(self) -> str | None:
        return self.core.user_id

    @property
    def is_authenticated(self) -> bool:
        return self.core.is_authenticated

    @property
    def handle(self) -> str | None:
        return self.core.handle

    @property
    def auth_at(self) -> float | None:
        return self.core.auth_at

    @property
    def remember(self) -> bool:
        return self.core.remember

    @property
    def expires_at(self) -> float | None:
        return self.core.expires_at


class UnavailableSession(NullSession):
    """Stands in for the session when the store failed at load.

    The request is answered 503 before any view runs; this object only keeps error pages,
    ``after_request`` hooks and templates that glance at the session from turning that 503
    into a 500. It reads as empty and anonymous, and it ignores writes: nothing is saved
    for a request that failed, so nothing can overwrite the real session later.
    """

    user_id = None
    handle = None
    is_authenticated = False

    def _ignore(self, *args: Any, **kwargs: Any) -> None:
        return None

    def pop(self, key: str, default: Any = None) -> Any:
        return default

    def setdefault(self, key: str, default: Any = None) -> Any:
        return default

    def popitem(self) -> tuple[str, Any]:  # type: ignore[override]
        raise KeyError("popitem(): the session is empty (store unavailable)")

    __setitem__ = __delitem__ = clear = update = _ignore  # type: ignore[assignment]
