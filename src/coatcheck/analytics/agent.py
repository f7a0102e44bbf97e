"""A user agent reduced to what analytics may keep: browser family, OS family and device
class. The user agent itself is never stored (it is a fingerprinting surface); these three
coarse values are enough for the browser / OS / device split.

``ua-parser`` (its ``ua_parser`` module) is used when it is installed; otherwise a coarse
stdlib reading of the well-known tokens, which knows the major browsers and systems and
calls everything else ``Other``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = ["Agent", "reduce_agent"]


class Agent(NamedTuple):
    browser: str
    os: str
    device: str
    """``desktop``, ``mobile``, ``tablet``, ``bot`` or ``other``."""


UNKNOWN = Agent("Other", "Other", "other")

_BOT = re.compile(r"bot|crawl|spider|slurp|headless|curl|wget|python-|httpx", re.IGNORECASE)
_BROWSERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Edge", re.compile(r"Edg(e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/|Chromium/")),
    ("Safari", re.compile(r"Version/[\d.]+.*Safari/")),
)
_SYSTEMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Windows", re.compile(r"Windows")),
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("Linux", re.compile(r"Linux|X11")),
)


def _coarse(user_agent: str) -> Agent:
    browser = next((name for name, rx in _BROWSERS if rx.search(user_agent)), "Other")
    system = next((name for name, rx in _SYSTEMS if rx.search(user_agent)), "Other")
    if _BOT.search(user_agent):
        device = "bot"
    elif (
        "iPad" in user_agent
        or "Tablet" in user_agent
        or (system == "Android" and "Mobile" not in user_agent)
    ):
        device = "tablet"
    elif "Mobi" in user_agent or "iPhone" in user_agent or "iPod" in user_agent:
        device = "mobile"
    elif system in ("Windows", "macOS", "Linux", "ChromeOS"):
        device = "desktop"
    else:
        device = "other"
    return Agent(browser, system, device)


_MOBILE_WORDS = re.compile(r"^Mobile | Mobile( iOS| WebView)?$| iOS$")


def _with_ua_parser(parse: Any, user_agent: str) -> Agent:
    """ua-parser's families, without its mobile variants (``Mobile Safari``, ``Chrome
    Mobile iOS``: the device class says mobile already), so both readings name a browser
    alike; ``Mac OS X`` is ``macOS``."""
    coarse = _coarse(user_agent)  # device class: ua-parser names models, not classes
    result = parse(user_agent)
    browser = getattr(getattr(result, "user_agent", None), "family", None) or coarse.browser
    system = getattr(getattr(result, "os", None), "family", None) or coarse.os
    browser = _MOBILE_WORDS.sub("", str(browser)) or coarse.browser
    system = "macOS" if system == "Mac OS X" else str(system)
    if browser == "Other":
        browser = coarse.browser
    return Agent(browser, system, coarse.device)


def _parser() -> Any:
    try:
        from ua_parser import parse  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return parse


_PARSE = _parser()


@lru_cache(maxsize=2048)
def reduce_agent(user_agent: str | None) -> Agent:
    """Browser, OS and device class of ``user_agent`` (``Other`` / ``other`` when unknown).
    Cached: a site sees a few hundred distinct agents, each parsed once."""
    if not user_agent:
        return UNKNOWN
    if _PARSE is not None:
        return _with_ua_parser(_PARSE, user_agent)
    return _coarse(user_agent)
