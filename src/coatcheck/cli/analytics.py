"""``coatcheck analytics``: the report of ``coatcheck.analytics.figures.summary`` as Rich
tables or one JSON document, and the retention purge."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from coatcheck.analytics.periods import parse_when
from coatcheck.analytics.setup import open_store
from coatcheck.analytics.store import AnalyticsStore
from coatcheck.cli.common import CommandError, one_line
from coatcheck.errors import CoatcheckError

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["purge_analytics", "report", "report_tables"]


@contextmanager
def opened(url: str) -> Iterator[AnalyticsStore]:
    try:
        store = open_store(url)
    except (CoatcheckError, ValueError, OSError) as exc:
        raise CommandError(f"analytics store: {one_line(exc)}") from None
    try:
        yield store
    finally:
        store.close()


def report(url: str, since: str, until: str | None, route: str | None) -> dict[str, Any]:
    """The summary document of ``[since, until)`` over the store ``url`` names."""
    from coatcheck.analytics.figures import summary

    now = time.time()
    try:
        start = parse_when(since, now)
        end = now if until is None else parse_when(until, now)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if start >= end:
        raise CommandError("--since must be before --until")
    with opened(url) as store:
        return summary(store, start, end, route, now=now)


def purge_analytics(url: str, older_than: str, batch: int) -> int:
    """Delete rows older than ``older_than`` (a span: ``395d``)."""
    try:
        cutoff = parse_when(older_than, time.time())
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    with opened(url) as store:
        return store.purge_before(cutoff, batch)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def report_tables(doc: dict[str, Any]) -> list[RenderableType]:
    """The document as a headline table and one table per ranked list."""
    from rich.table import Table

    head = Table(title="Visits", show_header=False)
    visitors = doc["visitors"]
    for label, value in (
        ("visits", str(doc["visits"])),
        ("visitors (sessions / users)", f"{visitors['sessions']} / {visitors['users']}"),
        ("active now", str(doc["active_now"])),
        ("bounce rate", f"{doc['bounce_rate']:.1%}"),
        ("pages per visit", f"{doc['pages_per_visit']:.2f}"),
        (
            "duration p50 / p90",
            f"{_seconds(doc['duration_p50'])} / {_seconds(doc['duration_p90'])}",
        ),
        ("login share", f"{doc['login_share']:.1%}"),
        ("time to login p50", _seconds(doc["time_to_login_p50"])),
    ):
        head.add_row(label, value)
    tables: list[RenderableType] = [head]
    for key, title in (
        ("top_pages", "Top pages"),
        ("entry_pages", "Entry pages"),
        ("exit_pages", "Exit pages"),
        ("transitions", "Transitions"),
        ("end_reasons", "How sessions end"),
        ("browsers", "Browsers"),
        ("os", "Operating systems"),
        ("devices", "Devices"),
        ("events", "Custom events"),
    ):
        rows = doc[key]
        if not rows:
            continue
        table = Table(title=title)
        for column in rows[0]:
            table.add_column(column)
        for row in rows:
            table.add_row(*(str(v) for v in row.values()))
        tables.append(table)
    return tables
