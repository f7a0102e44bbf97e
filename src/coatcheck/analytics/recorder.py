"""The page-view recorder: what each edge calls once a response is out.

It decides, from the request's facts and the session, whether anything may be recorded:
the session must be stored (a handle names the visitor), its consent must allow
``analytics`` (the gate) and no Global Privacy Control refusal may stand (``Sec-GPC: 1``).
Then it queues a page view (when the request is one: ``Accept`` prefers HTML) and the
custom events the handler stated with ``session.track``, and returns at once: the writer
thread does the I/O. Nothing here can fail a request: any error is logged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from coatcheck.analytics.agent import reduce_agent
from coatcheck.analytics.requests import gpc_refuses, prefers_html
from coatcheck.analytics.routes import route_of
from coatcheck.analytics.rows import EVENT, PAGE, Hit
from coatcheck.analytics.writer import BackgroundWriter
from coatcheck.core.session import Session

__all__ = ["ConsentGate", "PageFacts", "PageRecorder", "consent_gate"]

logger = logging.getLogger("coatcheck.analytics")

ConsentGate = Callable[[Session], bool]
"""Does this session's consent allow analytics? Called once per recorded request."""


def consent_gate(session: Session) -> bool:
    """The default gate, wired to coatcheck's consent: the session's ``consent`` (the
    privacy layer's consent state on the Session) must allow the ``analytics`` category.
    A session without a consent state (none given yet) records nothing: analytics is
    opt-in."""
    consent = getattr(session, "consent", None)
    return bool(consent is not None and consent.allows("analytics"))


@dataclass(frozen=True, slots=True)
class PageFacts:
    """What an edge knows of one request once its response started. ``template`` is the
    framework's route template, when it matched one; ``duration`` is in seconds."""

    method: str
    path: str
    status: int | None
    started: float
    duration: float | None = None
    template: str | None = None
    accept: str | None = None
    user_agent: str | None = None
    gpc: str | None = None


class PageRecorder:
    """Queues page views and custom events into ``writer``, behind ``gate``. Where a page
    view came from (its previous route) is the store's to say: it knows the visit."""

    def __init__(
        self,
        writer: BackgroundWriter[Hit],
        gate: ConsentGate = consent_gate,
    ) -> None:
        self.writer = writer
        self.gate = gate

    def allowed(self, session: Session, gpc: str | None) -> bool:
        """May anything about this request be recorded?"""
        return session.handle is not None and not gpc_refuses(gpc) and self.gate(session)

    def after_response(self, session: Session, facts: PageFacts) -> None:
        """Record ``facts`` (when a page view) and the session's tracked events. Never
        raises: recording is not the request's business."""
        try:
            tracked = session.drain_tracked()
            wants_page = prefers_html(facts.accept)
            if not (tracked or wants_page) or not self.allowed(session, facts.gpc):
                return
            self._record(session, facts, tracked, wants_page)
        except Exception:
            logger.exception("analytics: a request's page view was not recorded")

    def _record(
        self,
        session: Session,
        facts: PageFacts,
        tracked: list[tuple[str, dict[str, object]]],
        wants_page: bool,
    ) -> None:
        handle = session.handle
        assert handle is not None
        agent = reduce_agent(facts.user_agent)
        common = {
            "session": handle,
            "user_id": session.user_id,
            "browser": agent.browser,
            "os": agent.os,
            "device": agent.device,
        }
        route = route_of(facts.path, facts.template)
        if wants_page:
            duration = None if facts.duration is None else round(facts.duration * 1000, 3)
            self.writer.put(
                Hit(
                    kind=PAGE,
                    at=facts.started,
                    name=route,
                    method=facts.method.upper(),
                    status=facts.status,
                    duration_ms=duration,
                    **common,  # type: ignore[arg-type]
                )
            )
        for name, props in tracked:
            self.writer.put(
                Hit(kind=EVENT, at=facts.started, name=name, previous=route, props=props, **common)  # type: ignore[arg-type]
            )
