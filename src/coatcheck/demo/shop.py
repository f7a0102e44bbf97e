"""The demo's fixed catalogue and users.

Fixed on purpose: a cart may only hold known product ids, so nothing a visitor types ever
becomes a product name on the page, and the two users are printed on the home page so a
newcomer can log in from two browsers and watch the sessions list.
"""

from __future__ import annotations

from coatcheck.core.tokens import constant_time_equal

PRODUCTS: dict[str, str] = {
    "coat": "Wool coat",
    "scarf": "Striped scarf",
    "umbrella": "Folding umbrella",
    "hat": "Felt hat",
}
"""Product id -> display name."""

USERS: dict[str, str] = {"alice": "alice", "bob": "bob"}
"""Demo users: username -> password (never do this outside a demo)."""

MAX_CART_ITEMS = 50
"""A cart is session data: bounded, so a script cannot grow one record without limit."""


def authenticate(username: str, password: str) -> str | None:
    """The user id for valid credentials, else None.

    The password is compared in constant time even for unknown users, so the demo does not
    teach a timing leak that tells which usernames exist.
    """
    expected = USERS.get(username)
    matches = constant_time_equal(password, expected if expected is not None else "\x00")
    return username if expected is not None and matches else None
