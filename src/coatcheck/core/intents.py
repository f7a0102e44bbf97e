"""``Intents``: what a request asked of its commit beyond its data writes, as one immutable
value that ``policy`` plans from (kept apart from ``Session``, which holds one)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Intents:
    """What a request asked of its commit beyond its data writes: the value ``policy``
    plans from, together with the data delta (``Session.changed_keys()``,
    ``Session.removed_keys``). Immutable: each intent a handler states gives its Session a
    new value, so a plan can never see one half-changed. (A frozen slotted dataclass, not a
    NamedTuple: reading a slot is a fraction of the cost of a tuple field, and policy reads
    several on every writing request.)

    ``login``: ``login()`` was called; its target is the session's ``user_id``,
    ``remember`` and ``auth_level``. ``logout``: ``logout()`` was called. ``regenerate``: a
    new token at commit (``regenerate()``, and every login). ``rotate``: the engine found the
    periodic rotation due at load. ``meta_changed``: engine metadata (``set_meta``) to write.
    ``keep``: store it even empty (``keep()``). ``keep_alive``: slide the idle deadline
    now (``keep_alive()``). ``deadline_cap``: end it no later than this (``cap_deadline()``).
    ``ended``: ``logout()`` was called, even if a ``login()`` followed it in the same
    request: the loaded record ends, so whatever is stored next is a new record (a new
    handle and nothing of the old one's data or metadata), never the old one renamed.
    """

    login: bool = False
    logout: bool = False
    regenerate: bool = False
    rotate: bool = False
    meta_changed: bool = False
    keep: bool = False
    keep_alive: bool = False
    deadline_cap: float | None = None
    ended: bool = False


NO_INTENTS = Intents()
"""Every session's intents until its handler states one (most never do)."""
