"""Web origins as browsers serialize them (``scheme://host[:port]``): pure string rules,
shared by the configuration (``trusted_origins``) and the CSRF checks."""

from __future__ import annotations

import re

_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_ORIGIN_RE = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/?#,@]+")


def normalize_origin(value: str) -> str | None:
    """``scheme://host[:port]`` lower-cased without a default port, as browsers serialize
    an ``Origin``; None for ``null`` and anything that is not one origin (a path, a list,
    spaces, user info)."""
    text = value.strip().lower()
    if len(text) > 2048 or not _ORIGIN_RE.fullmatch(text):
        return None
    scheme = text.partition(":")[0]
    default = _DEFAULT_PORTS.get(scheme)
    if default is not None and text.endswith(default):
        text = text[: -len(default)]
    return text
