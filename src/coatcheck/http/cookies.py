"""Reading the session cookie from a Cookie header and writing Set-Cookie values.

Only the one cookie we need is looked for (http.cookies parses everything and chokes on
values browsers accept). With several cookies of the same name (cookie tossing), the first
is used: browsers list the most specific path first, and a ``__Host-`` cookie cannot be
planted by a subdomain at all.
"""

from __future__ import annotations

from coatcheck.core.config import SessionConfig

_EXPIRED = "Thu, 01 Jan 1970 00:00:00 GMT"


def read_cookie(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header, or None."""
    if name not in header:
        return None
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def _attributes(config: SessionConfig) -> str:
    attrs = [f"Path={config.path}"]
    if config.domain:
        attrs.append(f"Domain={config.domain}")
    if config.secure:
        attrs.append("Secure")
    if config.http_only:
        attrs.append("HttpOnly")
    attrs.append(f"SameSite={config.same_site.capitalize()}")
    return "; ".join(attrs)


def set_cookie(config: SessionConfig, token: str, max_age: int | None = None) -> str:
    """Set-Cookie value delivering ``token``; persistent only when ``max_age`` is given
    (remember-me), otherwise it ends with the browser session."""
    value = f"{config.cookie_name}={token}; {_attributes(config)}"
    if max_age is not None:
        value += f"; Max-Age={max_age}"
    return value


def clear_cookie(config: SessionConfig) -> str:
    """Set-Cookie value that makes the browser drop the session cookie."""
    return f'{config.cookie_name}=""; {_attributes(config)}; Max-Age=0; Expires={_EXPIRED}'
