"""The page-view facts every edge hands the analytics recorder, read from its headers.

An edge knows the method, the path, the status and (sometimes) the route template; the
rest comes from three request headers read here once for all edges: ``Accept`` (is this a
page view?), ``User-Agent`` (reduced to browser, OS and device class by the recorder) and
``Sec-GPC`` (a Global Privacy Control refusal).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from coatcheck.analytics.recorder import PageFacts, PageRecorder
from coatcheck.analytics.setup import analytics_for
from coatcheck.engine.manager import SessionManager

__all__ = ["facts_from_environ", "facts_from_header_list", "recorder_for"]


def recorder_for(manager: SessionManager) -> PageRecorder | None:
    """The page-view recorder of ``manager``'s analytics, or None when analytics is off."""
    analytics = analytics_for(manager)
    return analytics.recorder if analytics is not None else None


def facts_from_header_list(
    headers: Iterable[tuple[bytes, bytes]],
    method: str,
    path: str,
    status: int | None,
    started: float,
    duration: float | None,
    template: str | None = None,
) -> PageFacts:
    """``PageFacts`` from an ASGI header list."""
    accept = user_agent = gpc = None
    for name, value in headers:
        if name == b"accept":
            accept = value.decode("latin-1")
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
        elif name == b"sec-gpc":
            gpc = value.decode("latin-1")
    return PageFacts(method, path, status, started, duration, template, accept, user_agent, gpc)


def facts_from_environ(
    environ: Mapping[str, Any],
    status: int | None,
    started: float,
    duration: float | None,
    template: str | None = None,
) -> PageFacts:
    """``PageFacts`` from a WSGI environ (Flask and Django use it too)."""
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    return PageFacts(
        str(environ.get("REQUEST_METHOD", "GET")),
        path or "/",
        status,
        started,
        duration,
        template,
        environ.get("HTTP_ACCEPT"),
        environ.get("HTTP_USER_AGENT"),
        environ.get("HTTP_SEC_GPC"),
    )
