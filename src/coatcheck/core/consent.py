"""Consent, decided on the server: the categories, a visitor's choice and how it changes.

A cookie banner that only JavaScript sees leaves the server guessing; here the choice is
part of the session (kept in its record's metadata, small and typed), so every edge and the
session service can ask ``session.consent.allows("analytics")`` before they record
anything (ePrivacy Art. 5(3), GDPR Art. 7(1)). Each change is also an intent: the engine
announces it after the commit as a ``session.consent`` event (categories granted, denied
and withdrawn, method, policy revision; never the token), which the consent ledger of
``coatcheck.privacy.ledger`` writes down as proof.

The rules, as a table (first row that matches wins):

==============================================  ==========================================
the call                                        what happens
==============================================  ==========================================
``allows("necessary")``                         always True; ``necessary`` cannot be
                                                refused (ConsentError)
``allows(other)``, no choice yet                False: off until granted
``grant(*c)``, ``deny(*c)``, ``set(m)``         the named categories change; the others
                                                keep their value
``accept_all()`` after Global Privacy Control   every category on except ``analytics``
was honoured in this session                    and ``marketing``, which only a choice
                                                naming them (``grant("analytics")``, or
                                                ``set`` with ``custom`` or ``api``) turns on
the request carries ``Sec-GPC: 1`` and this     ``analytics`` and ``marketing`` refused,
session has not honoured it yet                 method ``gpc`` (once per session)
``needs_prompt``                                True without a choice, when the choice was
                                                made under an older policy revision, or
                                                when only the GPC signal answered
==============================================  ==========================================

Pure: the time is the session's request time, and nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from coatcheck.errors import ConsentError

if TYPE_CHECKING:
    from coatcheck.core.config import SessionConfig

__all__ = [
    "ANALYTICS",
    "CONSENT_KEY",
    "FUNCTIONAL",
    "GPC_REFUSES",
    "MARKETING",
    "METHODS",
    "NECESSARY",
    "STANDARD_CATEGORIES",
    "Consent",
    "ConsentChange",
    "ConsentPolicy",
    "ConsentState",
]

NECESSARY = "necessary"
FUNCTIONAL = "functional"
ANALYTICS = "analytics"
MARKETING = "marketing"
STANDARD_CATEGORIES = (NECESSARY, FUNCTIONAL, ANALYTICS, MARKETING)
GPC_REFUSES = (ANALYTICS, MARKETING)
"""What a Global Privacy Control signal refuses: the sale or sharing of personal data
(CCPA/CPRA) is what analytics and marketing trackers do."""
METHODS = ("accept_all", "reject_all", "custom", "gpc", "api")
"""How a choice was made: a banner's two buttons, its per-category form, the browser's GPC
signal, or a call of the session service."""
CONSENT_KEY = "consent"
"""Engine metadata key of the session's consent state."""


@dataclass(frozen=True, slots=True)
class ConsentPolicy:
    """The categories an application asks about and the revision of its policy."""

    categories: tuple[str, ...] = STANDARD_CATEGORIES
    revision: int = 1

    @classmethod
    def of(cls, config: SessionConfig) -> ConsentPolicy:
        return cls(STANDARD_CATEGORIES + tuple(config.consent_categories), config.consent_revision)

    def check(self, categories: Iterable[str]) -> None:
        for name in categories:
            if name not in self.categories:
                known = ", ".join(self.categories)
                raise ConsentError(f"unknown consent category {name!r} (known: {known})")


DEFAULT_POLICY = ConsentPolicy()


@dataclass(frozen=True, slots=True)
class ConsentState:
    """A visitor's choice as it stands: which categories are granted and which refused
    (any other is off, never asked), under which policy revision, when and how."""

    granted: frozenset[str]
    denied: frozenset[str]
    revision: int
    at: float
    method: str
    gpc: bool = False
    """The Global Privacy Control signal was honoured in this session."""

    def allows(self, category: str) -> bool:
        return category == NECESSARY or category in self.granted

    def categories(self, policy: ConsentPolicy) -> dict[str, bool]:
        """Every category of ``policy`` and whether it is allowed."""
        return {name: self.allows(name) for name in policy.categories}

    def to_meta(self) -> dict[str, Any]:
        """The small JSON form kept in the record's metadata."""
        meta: dict[str, Any] = {
            "g": sorted(self.granted - {NECESSARY}),
            "d": sorted(self.denied),
            "r": self.revision,
            "at": self.at,
            "m": self.method,
        }
        if self.gpc:
            meta["gpc"] = True
        return meta

    @classmethod
    def from_meta(cls, value: object) -> ConsentState | None:
        """The state kept in metadata, or None for anything malformed (then the visitor
        is simply asked again: a bad record never grants anything)."""
        if not isinstance(value, Mapping):
            return None
        granted, denied = value.get("g"), value.get("d")
        revision, at, method = value.get("r"), value.get("at"), value.get("m")
        if not (_names(granted) and _names(denied) and method in METHODS):
            return None
        if isinstance(revision, bool) or not isinstance(revision, int):
            return None
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
            return None
        assert isinstance(granted, list) and isinstance(denied, list)
        refused = frozenset(denied) - {NECESSARY}
        return cls(
            frozenset(granted) - refused | {NECESSARY},
            refused,
            revision,
            float(at),
            str(method),
            value.get("gpc") is True,
        )

    def as_json(self, policy: ConsentPolicy) -> dict[str, Any]:
        """What an API shows: every category and whether it is allowed, and the rest."""
        return {
            "categories": self.categories(policy),
            "revision": self.revision,
            "at": self.at,
            "method": self.method,
            "gpc": self.gpc,
        }


def _names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """One change of a session's consent, as the ``session.consent`` event carries it.

    ``reason``: ``choice`` (the visitor, the app or the GPC signal chose), ``recalled``
    (a logged-in user's recorded choice applied on this device), ``login`` (the device's
    choice now belongs to the user who logged in)."""

    granted: tuple[str, ...]
    denied: tuple[str, ...]
    withdrawn: tuple[str, ...]
    method: str
    revision: int
    at: float
    reason: str = "choice"
    allowed: tuple[str, ...] = ()
    """Every category granted once the change is made (the state in force after it)."""
    refused: tuple[str, ...] = ()
    """Every category refused once the change is made."""

    def detail(self) -> dict[str, Any]:
        return {
            "granted": list(self.granted),
            "denied": list(self.denied),
            "withdrawn": list(self.withdrawn),
            "allowed": list(self.allowed),
            "refused": list(self.refused),
            "method": self.method,
            "revision": self.revision,
            "consent_at": self.at,
            "reason": self.reason,
        }


class ConsentHost(Protocol):
    """What consent needs of its ``Session`` (which imports this module, so it is named by
    what it does here): its metadata, and whether it is stored yet."""

    @property
    def is_new(self) -> bool: ...

    def meta_value(self, key: str, default: Any = None) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    def note_meta(self, key: str, value: Any) -> None: ...


class Consent:
    """``session.consent``: the session's consent, read and changed by the application.

    Reading changes nothing; each change is written with the next commit and announced
    after it as a ``session.consent`` event.
    """

    __slots__ = ("_now", "_session", "changes", "policy")

    def __init__(self, session: ConsentHost, policy: ConsentPolicy, now: float) -> None:
        self._session = session
        self.policy = policy
        self._now = now
        self.changes: list[ConsentChange] = []
        """The changes of this request, for the engine to announce after its commit."""

    # -- reading -----------------------------------------------------------------------
    @property
    def state(self) -> ConsentState | None:
        """The choice in force (None: none yet)."""
        return ConsentState.from_meta(self._session.meta_value(CONSENT_KEY))

    def allows(self, category: str) -> bool:
        """May this session do what ``category`` covers? ``necessary`` always; any other
        only once granted. An unknown category raises ConsentError (a typo must not read
        as a refusal, nor as a grant)."""
        self.policy.check((category,))
        if category == NECESSARY:
            return True
        state = self.state
        return state is not None and state.allows(category)

    @property
    def needs_prompt(self) -> bool:
        """Should the visitor be asked? No choice yet, one made under an older policy
        revision, or only the GPC signal (which answers analytics and marketing, not the
        rest)."""
        state = self.state
        return state is None or state.revision < self.policy.revision or state.method == "gpc"

    # -- the visitor's choices ---------------------------------------------------------
    def grant(self, *categories: str, method: str = "custom") -> None:
        """Turn ``categories`` on: an explicit grant, which also lifts a GPC refusal."""
        self.set(dict.fromkeys(categories, True), method=method)

    def deny(self, *categories: str, method: str = "custom") -> None:
        """Turn ``categories`` off (a withdrawal, when they were granted: Art. 7(3))."""
        self.set(dict.fromkeys(categories, False), method=method)

    def accept_all(self) -> None:
        """The banner's "accept all": every category on, but what a GPC signal refused in
        this session stays off."""
        self.set(dict.fromkeys(self.policy.categories, True), method="accept_all")

    def reject_all(self) -> None:
        """The banner's "reject all": every category but ``necessary`` off."""
        others = [c for c in self.policy.categories if c != NECESSARY]
        self.set(dict.fromkeys(others, False), method="reject_all")

    def set(self, choices: Mapping[str, bool], *, method: str = "custom") -> None:
        """Record a choice: each named category on (True) or off (False); the others keep
        their value. ``method`` says how it was made (one of ``METHODS``)."""
        if method not in METHODS:
            raise ConsentError(f"unknown consent method {method!r} (one of {', '.join(METHODS)})")
        self.policy.check(choices)
        if choices.get(NECESSARY) is False:
            raise ConsentError("'necessary' cannot be refused: it is always on")
        current = self.state
        gpc = method == "gpc" or (current is not None and current.gpc)
        on = {c for c, v in choices.items() if v and c != NECESSARY}
        off = {c for c, v in choices.items() if not v}
        if method == "gpc":
            if on:
                raise ConsentError("a GPC signal refuses; it grants nothing")
            off |= set(GPC_REFUSES)
        elif gpc and method == "accept_all":
            on -= set(GPC_REFUSES)
        self._write(current, on, off, method, gpc)

    # -- engine side -----------------------------------------------------------------
    def honour_gpc(self) -> None:
        """The request carries ``Sec-GPC: 1``: refuse ``analytics`` and ``marketing`` with
        method ``gpc``, once per session. A session not stored yet keeps the refusal only
        if it is stored anyway (the signal alone starts no session)."""
        current = self.state
        if current is not None and current.gpc:
            return
        quiet = self._session.is_new
        self._write(current, set(), set(GPC_REFUSES), "gpc", True, quiet=quiet)

    def adopt(self, recorded: ConsentState) -> None:
        """A user logged in whose latest recorded choice is ``recorded``: it applies here
        when this device has no choice or an older one. A GPC signal honoured in this
        session still stands over it."""
        current = self.state
        if current is not None and current.at >= recorded.at:
            return
        granted, denied = set(recorded.granted), set(recorded.denied)
        gpc = current is not None and current.gpc
        if gpc:
            granted -= set(GPC_REFUSES)
            denied |= set(GPC_REFUSES)
        state = ConsentState(
            frozenset(granted | {NECESSARY}),
            frozenset(denied),
            recorded.revision,
            recorded.at,
            recorded.method,
            gpc,
        )
        self._session.set_meta(CONSENT_KEY, state.to_meta())
        self.changes.append(_whole(state, "recalled"))

    def logged_in(self) -> None:
        """A login: the device's choice (if any, and unless this request changed it
        already) is announced again, now with the user's id, so the ledger can tell
        whose it is."""
        current = self.state
        if current is not None and not self.changes:
            self.changes.append(_whole(current, "login"))

    def _write(
        self,
        current: ConsentState | None,
        on: AbstractSet[str],
        off: AbstractSet[str],
        method: str,
        gpc: bool,
        *,
        quiet: bool = False,
    ) -> None:
        granted = set(current.granted) if current is not None else set()
        denied = set(current.denied) if current is not None else set()
        withdrawn = sorted(granted.intersection(off))
        granted = (granted - off) | on | {NECESSARY}
        denied = (denied - on) | off
        revision, now = self.policy.revision, self._now
        state = ConsentState(frozenset(granted), frozenset(denied), revision, now, method, gpc)
        if quiet:
            self._session.note_meta(CONSENT_KEY, state.to_meta())
        else:
            self._session.set_meta(CONSENT_KEY, state.to_meta())
        change = ConsentChange(
            tuple(sorted(on)),
            tuple(sorted(off)),
            tuple(withdrawn),
            method,
            revision,
            now,
            "choice",
            tuple(sorted(granted - {NECESSARY})),
            tuple(sorted(denied)),
        )
        self.changes.append(change)


def _whole(state: ConsentState, reason: str) -> ConsentChange:
    """A change that restates a whole state (a recall, a login)."""
    allowed = tuple(sorted(state.granted - {NECESSARY}))
    refused = tuple(sorted(state.denied))
    return ConsentChange(
        allowed, refused, (), state.method, state.revision, state.at, reason, allowed, refused
    )
