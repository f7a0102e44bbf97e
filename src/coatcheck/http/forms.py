"""Finding one plain field in a form body, for the CSRF token a form sends.

The edges hand the app its body untouched and parse nothing else, so this is not a form
parser: it looks for one field in a urlencoded or multipart body, tolerates any bytes (a
malformed body simply has no such field), and is bounded by ``MAX_FORM_BODY`` so one
request cannot make an edge hold an unbounded body before the app has even seen it.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["MAX_FORM_BODY", "content_length", "form_field", "is_form", "mime_type"]

MAX_FORM_BODY = 1024 * 1024
"""Largest form body searched for the token field. A larger form (a file upload, say) must
send the token in the header; bounding the buffer keeps one request from holding an
unbounded body in memory before the app has even seen it."""

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

_PARAM_RE = re.compile(r';\s*([^\s;=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')


def content_length(value: str | None) -> int | None:
    """A Content-Length header's value, or None when absent or not a plain decimal
    (``str.isdigit`` alone also accepts digits like "²" that ``int`` refuses)."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


def mime_type(content_type: str | None) -> str:
    """The lower-case media type of a Content-Type value, without its parameters."""
    return (content_type or "").partition(";")[0].strip().lower()


def is_form(content_type: str | None) -> bool:
    """Is the body a form a browser submits (urlencoded or multipart)?"""
    return mime_type(content_type) in _FORM_TYPES


def _header_params(value: str) -> dict[str, str]:
    """The ``name=value`` parameters of a header such as Content-Type or
    Content-Disposition (quoted strings unescaped; the first of repeated names wins)."""
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(value):
        raw = match.group(2)
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(match.group(1).lower(), raw)
    return params


def _urlencoded_field(body: bytes, name: str) -> str | None:
    text = body.decode("latin-1")
    for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True, encoding="latin-1"):
        if key == name:
            return value
    return None


def _multipart_field(content_type: str, body: bytes, name: str) -> str | None:
    boundary = _header_params(content_type).get("boundary")
    if not boundary:
        return None
    for part in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, found, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not found:
            continue
        for line in head.split(b"\r\n"):
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() != "content-disposition":
                continue
            params = _header_params(value)
            if params.get("name") == name and "filename" not in params:
                return content.removesuffix(b"\r\n").decode("latin-1")
    return None


def form_field(content_type: str | None, body: bytes, name: str) -> str | None:
    """The value of the plain (non-file) form field ``name`` in a urlencoded or multipart
    body, or None. Tolerant of any bytes: a malformed body simply has no such field."""
    mime = mime_type(content_type)
    if mime == "application/x-www-form-urlencoded":
        return _urlencoded_field(body, name)
    if mime == "multipart/form-data":
        return _multipart_field(content_type or "", body, name)
    return None
