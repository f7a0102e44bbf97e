"""Minimisation of what is kept about a client (GDPR Art. 5(1)(c), 25): the user agent
reduced by ua-parser to browser family and major version, OS family and device class.

Without ua-parser installed (the ``privacy`` extra), the standard library's reduction of
``coatcheck.core.client`` applies: the families and the device class, no version. Every
edge calls :func:`install` once on its manager, so whichever edge serves a request, the
same reduction is kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from coatcheck.core.client import coarse_user_agent, device_class, os_family
from coatcheck.engine.manager import SessionManager

__all__ = ["install", "parsed_user_agent", "reducer"]


def _parser() -> Callable[[str], Any] | None:
    try:
        import ua_parser
    except ImportError:  # the privacy extra is not installed
        return None
    parse: Callable[[str], Any] = ua_parser.parse
    return parse


_PARSE = _parser()


def parsed_user_agent(raw: str) -> str:
    """``"<browser family> <major> / <OS family> / <device class>"`` as ua-parser reads
    the string (``"Chrome 120 / Windows / desktop"``); the coarse reduction when
    ua-parser is not installed."""
    if _PARSE is None:
        return coarse_user_agent(raw)
    result = _PARSE(raw)
    agent, system = result.user_agent, result.os
    family = agent.family if agent is not None else "Other"
    browser = f"{family} {agent.major}" if agent is not None and agent.major else family
    osname = system.family if system is not None else os_family(raw)
    kind = device_class(raw)
    device = result.device
    if device is not None and device.family == "Spider":
        kind = "bot"
    return f"{browser} / {osname} / {kind}"


def reducer() -> Callable[[str], str]:
    """The reduction in force: ua-parser's when installed, else the coarse one."""
    return parsed_user_agent if _PARSE is not None else coarse_user_agent


def install(manager: SessionManager) -> SessionManager:
    """Make ``manager`` keep user agents in the reduced form of :func:`reducer`
    (idempotent; the IP prefixes and the hash key stay the manager's)."""
    rules = manager.client_rules
    reduce = reducer()
    if rules.reduce_user_agent is not reduce:
        manager.client_rules = dataclasses.replace(rules, reduce_user_agent=reduce)
    return manager
