"""The recorder and its writer: the consent gate, GPC, what a page view keeps (and what it
never keeps), custom events from ``session.track``, a bounded queue that counts what it
drops, and a store that goes down costing a log line, never an exception."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from types import SimpleNamespace

import pytest

from coatcheck.analytics import agent
from coatcheck.analytics.agent import reduce_agent
from coatcheck.analytics.recorder import PageFacts, PageRecorder, consent_gate
from coatcheck.analytics.requests import gpc_refuses, prefers_html
from coatcheck.analytics.routes import fold_path, route_of
from coatcheck.analytics.rows import Hit
from coatcheck.analytics.sqlite_store import SQLiteAnalytics
from coatcheck.analytics.writer import BackgroundWriter
from coatcheck.core.record import SessionRecord
from coatcheck.core.session import Session
from coatcheck.errors import SessionDataError

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def stored(handle: str = "h1", user: str | None = None) -> Session:
    record = SessionRecord(
        key="k" * 43,
        handle=handle,
        data={},
        created_at=0.0,
        last_seen_at=0.0,
        expires_at=10_000.0,
        absolute_at=10_000.0,
        user_id=user,
    )
    return Session(record, 5.0)


class Collected:
    """A writer target that keeps what it got."""

    def __init__(self) -> None:
        self.rows: list[Hit] = []

    def __call__(self, rows: Sequence[Hit]) -> None:
        self.rows.extend(rows)


def recorder(allow: bool = True) -> tuple[PageRecorder, Collected, BackgroundWriter[Hit]]:
    target = Collected()
    writer: BackgroundWriter[Hit] = BackgroundWriter(target, interval=0.01)
    return PageRecorder(writer, lambda s: allow), target, writer


def facts(path: str = "/products/42?ref=mail", **kw: object) -> PageFacts:
    values: dict[str, object] = {
        "method": "get",
        "path": path,
        "status": 200,
        "started": 1000.0,
        "duration": 0.0125,
        "accept": HTML,
        "user_agent": FIREFOX,
    }
    values.update(kw)
    return PageFacts(**values)  # type: ignore[arg-type]


def test_a_page_view_keeps_the_route_method_status_duration_and_client_class() -> None:
    rec, target, writer = recorder()
    session = stored(user="u1")
    rec.after_response(session, facts())
    rec.after_response(session, facts("/cart", template="/cart"))
    assert writer.flush()
    first, second = target.rows
    assert (first.kind, first.name, first.method, first.status) == (
        "page",
        "/products/{id}",
        "GET",
        200,
    )
    assert first.duration_ms == 12.5
    assert (first.session, first.user_id, first.at) == ("h1", "u1", 1000.0)
    assert (first.browser, first.os, first.device) == ("Firefox", "Linux", "desktop")
    assert first.previous is None and second.previous is None  # the store says, per visit
    text = repr(target.rows)
    assert "ref=mail" not in text and "Gecko" not in text and "42" not in text


def test_a_denying_gate_gpc_or_no_handle_record_nothing() -> None:
    rec, target, writer = recorder(allow=False)
    rec.after_response(stored(), facts())
    allowing, kept, kept_writer = recorder(allow=True)
    allowing.after_response(stored(), facts(gpc="1"))  # Sec-GPC: 1 stands over consent
    allowing.after_response(Session(None, 5.0), facts())  # never stored: no visitor
    allowing.after_response(stored(), facts(accept="application/json"))  # a fetch call
    assert writer.flush() and kept_writer.flush()
    assert target.rows == [] and kept.rows == []


def test_tracked_events_are_drained_after_the_response_under_the_same_gate() -> None:
    rec, target, writer = recorder()
    session = stored()
    session.track("checkout.started", {"items": 2})
    session.track("coupon.applied")
    assert not session.pending  # tracking writes nothing to the session
    rec.after_response(session, facts("/cart", accept="*/*"))  # not a page view: events only
    rec.after_response(session, facts("/cart", accept="*/*"))  # drained: nothing twice
    assert writer.flush()
    assert [(r.kind, r.name, r.props) for r in target.rows] == [
        ("event", "checkout.started", {"items": 2}),
        ("event", "coupon.applied", {}),
    ]
    denied, none, none_writer = recorder(allow=False)
    other = stored()
    other.track("checkout.started")
    denied.after_response(other, facts())
    assert none_writer.flush() and none.rows == []
    assert other.drain_tracked() == []  # dropped, not kept for later


def test_track_refuses_what_cannot_be_stored() -> None:
    session = stored()
    with pytest.raises(SessionDataError):
        session.track("")
    with pytest.raises(SessionDataError, match="bad"):
        session.track("x", {"bad": object()})


def test_the_default_gate_asks_the_sessions_consent_for_analytics() -> None:
    # To adjust at merge: consent is the privacy helper's Session.consent; until then a
    # stub session exposing ``.consent.allows`` stands for it.
    asked: list[str] = []

    def allows(category: str) -> bool:
        asked.append(category)
        return category == "analytics"

    granted = SimpleNamespace(handle="h", consent=SimpleNamespace(allows=allows))
    refused = SimpleNamespace(handle="h", consent=SimpleNamespace(allows=lambda c: False))
    assert consent_gate(granted) is True  # type: ignore[arg-type]
    assert asked == ["analytics"]
    assert consent_gate(refused) is False  # type: ignore[arg-type]
    assert consent_gate(SimpleNamespace(handle="h")) is False  # type: ignore[arg-type]
    assert consent_gate(stored()) is False  # no consent given yet: opt-in


@pytest.mark.parametrize(
    ("path", "folded"),
    [
        ("/orders/12345/items", "/orders/{id}/items"),
        ("/u/3f2b8c1e-9d4a-4b7e-8f00-1a2b3c4d5e6f", "/u/{id}"),
        ("/blob/0123456789abcdef0123", "/blob/{id}"),
        ("/blog/hello-world?utm=x#top", "/blog/hello-world"),
        ("/cafe/beef", "/cafe/beef"),  # short hex words stay
    ],
)
def test_ids_are_folded_and_the_query_string_goes(path: str, folded: str) -> None:
    assert fold_path(path) == folded


def test_a_framework_template_wins_and_flask_converters_read_as_placeholders() -> None:
    assert route_of("/products/7", "/products/{id}") == "/products/{id}"
    assert route_of("/products/7", "/products/<int:id>") == "/products/{id}"
    assert route_of("/products/7", "products/<int:id>/") == "/products/{id}/"  # Django


def test_which_requests_are_page_views() -> None:
    assert prefers_html(HTML)
    assert prefers_html("text/html")
    assert not prefers_html("*/*")
    assert not prefers_html("application/json, text/html;q=0.5")
    assert not prefers_html("text/html;q=0")
    assert not prefers_html(None)
    assert gpc_refuses("1") and not gpc_refuses("0") and not gpc_refuses(None)


@pytest.mark.parametrize("reading", ["coarse", "reduce_agent"])
def test_a_user_agent_is_reduced_to_three_coarse_values(reading: str) -> None:
    # ``reduce_agent`` uses ua-parser when it is installed; the stdlib reading otherwise.
    # Both name these agents alike.
    reduce = agent._coarse if reading == "coarse" else reduce_agent
    assert tuple(reduce(IPHONE)) == ("Safari", "iOS", "mobile")
    assert tuple(reduce(FIREFOX)) == ("Firefox", "Linux", "desktop")
    assert tuple(reduce(CHROME_MAC)) == ("Chrome", "macOS", "desktop")
    assert tuple(reduce(ANDROID_CHROME)) == ("Chrome", "Android", "mobile")
    assert reduce("Googlebot/2.1 (+http://www.google.com/bot.html)").device == "bot"
    assert tuple(reduce_agent(None)) == ("Other", "Other", "other")


def test_a_full_queue_drops_and_counts_without_blocking() -> None:
    release = threading.Event()

    def stuck(rows: Sequence[int]) -> None:
        release.wait(5)

    writer: BackgroundWriter[int] = BackgroundWriter(stuck, capacity=2, batch=1, interval=0.01)
    results = [writer.put(i) for i in range(6)]
    # the thread holds one row in its stuck call; two more fit in the queue
    assert results.count(False) >= 3
    assert writer.stats().dropped == results.count(False)
    release.set()
    assert writer.flush()
    writer.close()


def test_a_store_that_goes_down_is_a_count_and_one_log_line(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteAnalytics(":memory:")
    writer: BackgroundWriter[Hit] = BackgroundWriter(store.write_batch, batch=1, interval=0.01)
    rec = PageRecorder(writer, lambda s: True)
    rec.after_response(stored(), facts())
    assert writer.flush()
    store.close()  # the store is gone
    with caplog.at_level(logging.WARNING, logger="coatcheck.analytics"):
        for _ in range(3):
            rec.after_response(stored(), facts())  # never raises
        assert writer.flush()
    stats = writer.stats()
    assert (stats.written, stats.failed, stats.failures) == (1, 3, 3)
    assert len([r for r in caplog.records if "target failed" in r.getMessage()]) == 1
