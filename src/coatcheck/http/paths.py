"""Path prefixes an edge treats apart (passive routes), matched by path segment.

``"/poll"`` covers ``/poll`` and ``/poll/...``, never ``/polling``: a plain string prefix
would also catch a sibling route that happens to share the letters.
"""

from __future__ import annotations

from collections.abc import Iterable


def prefixes(paths: Iterable[str]) -> tuple[str, ...]:
    """The paths without a trailing slash, ready for ``is_under``."""
    return tuple(p.rstrip("/") for p in paths)


def is_under(path: str, bases: tuple[str, ...]) -> bool:
    """Is ``path`` one of ``bases`` (from ``prefixes``) or below one?"""
    return any(not base or path == base or path.startswith(base + "/") for base in bases)
