"""From a provider's documents to what the pages show: headline figures and charts.

A provider's document is read defensively: a key that is missing or of another shape
leaves its chart empty ("no data"), never a 500, so a dashboard over a newer or older
analytics store still renders everything it can read.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from coatcheck.service.admin import charts
from coatcheck.service.admin.charts import Point

TOP_ROWS: Final = 10
LABEL_KEYS: Final = ("route", "name", "label", "reason", "category")
COUNT_KEYS: Final = ("views", "visits", "count", "sessions", "value")


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of a page: its heading, its SVG (None: no data) and a note."""

    title: str
    svg: str | None
    note: str = ""


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def pairs(value: Any, limit: int = TOP_ROWS) -> list[Point]:
    """``(label, count)`` rows from a mapping ``{label: count}`` or a list of objects
    naming their label and count (``{"route": "/", "views": 3}``), largest first."""
    rows: list[Point] = []
    if isinstance(value, Mapping):
        for label, count in value.items():
            n = number(count)
            if n is not None:
                rows.append((str(label), n))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            if not isinstance(item, Mapping):
                continue
            label = next((item[k] for k in LABEL_KEYS if k in item), None)
            if label is None and "from" in item and "to" in item:
                label = f"{item['from']} \u2192 {item['to']}"
            n = next((number(item[k]) for k in COUNT_KEYS if k in item), None)
            if label is not None and n is not None:
                rows.append((str(label), n))
    rows.sort(key=lambda row: -row[1])
    return rows[:limit]


def day(start: float) -> str:
    return datetime.datetime.fromtimestamp(start, datetime.UTC).strftime("%b %d")


def hour(start: float) -> str:
    return datetime.datetime.fromtimestamp(start, datetime.UTC).strftime("%d %H:00")


def series(summary: Mapping[str, Any], period: str, field: str, label: Any) -> list[Point]:
    """``field`` of each bucket of ``summary["series"][period]``, in time order."""
    buckets = summary.get("series")
    rows = buckets.get(period) if isinstance(buckets, Mapping) else None
    points: list[tuple[float, Point]] = []
    for bucket in rows if isinstance(rows, Sequence) else ():
        if not isinstance(bucket, Mapping):
            continue
        start, value = number(bucket.get("start")), number(bucket.get(field))
        if start is not None and value is not None:
            points.append((start, (label(start), value)))
    points.sort(key=lambda p: p[0])
    return [p for _, p in points]


def duration(seconds: float | None) -> str:
    """``75`` as ``1m 15s``, ``300`` as ``5m``, ``3725`` as ``1h 2m``; None as ``-``."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes >= 60:
        return f"{minutes // 60}h {minutes % 60}m"
    if not minutes:
        return f"{secs}s"
    return f"{minutes}m {secs}s" if secs else f"{minutes}m"


def histogram(summary: Mapping[str, Any]) -> list[Point]:
    """The optional ``duration_histogram``: ``[{"upto": 10, "visits": 4}, ...]``, the last
    bucket's ``upto`` None (longer than the one before)."""
    rows = summary.get("duration_histogram")
    points: list[Point] = []
    previous: float | None = None
    for bucket in rows if isinstance(rows, Sequence) else ():
        if not isinstance(bucket, Mapping):
            continue
        visits = number(bucket.get("visits"))
        upto = number(bucket.get("upto"))
        if visits is None:
            continue
        label = f"\u2264{duration(upto)}" if upto is not None else f">{duration(previous)}"
        points.append((label, visits))
        previous = upto
    return points


def _chart(title: str, points: list[Point], draw: Any, note: str = "") -> Chart:
    return Chart(title, draw(title, points) if points else None, note)


def overview_charts(summary: Mapping[str, Any]) -> list[Chart]:
    """The overview's charts, in the order the issue names them."""
    share = number(summary.get("login_share"))
    login = Chart(
        "Visits that log in",
        charts.share("Visits that log in", share) if share is not None else None,
        "median time to login: " + duration(number(summary.get("time_to_login_p50"))),
    )
    return [
        _chart("Active sessions per hour", series(summary, "hour", "active", hour), charts.line),
        _chart("Visits per day", series(summary, "day", "visits", day), charts.columns),
        _chart("Visit duration", histogram(summary), charts.columns),
        _chart("Top pages (views)", pairs(summary.get("top_pages")), charts.bars),
        _chart("Transitions between pages", pairs(summary.get("transitions")), charts.bars),
        login,
        _chart("How sessions end", pairs(summary.get("end_reasons")), charts.bars),
        _chart("Devices", pairs(summary.get("devices")), charts.bars),
        _chart("Browsers", pairs(summary.get("browsers")), charts.bars),
        _chart("Operating systems", pairs(summary.get("os")), charts.bars),
    ]


def percent(value: float | None) -> str:
    return "-" if value is None else f"{charts.num(value * 100)}%"


def headline(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The key figures, as label and text."""

    def count(key: str) -> str:
        value = number(summary.get(key))
        return "-" if value is None else charts.num(value)

    return [
        ("Visits", count("visits")),
        ("Visitors", count("visitors")),
        ("Active now", count("active_now")),
        ("Bounce rate", percent(number(summary.get("bounce_rate")))),
        ("Pages per visit", count("pages_per_visit")),
        ("Median visit", duration(number(summary.get("duration_p50")))),
        ("90th percentile visit", duration(number(summary.get("duration_p90")))),
        ("Visits that log in", percent(number(summary.get("login_share")))),
    ]


def consent_charts(figures: Mapping[str, Any]) -> list[Chart]:
    """Share granted per category (0 to 1 each, shown as percentages) and the GPC share."""
    shares = [(label, value * 100) for label, value in pairs(figures.get("categories"), 50)]
    shares.sort(key=lambda row: row[0])
    gpc = number(figures.get("gpc_share"))
    return [
        Chart(
            "Consent granted, by category",
            charts.bars("Consent granted, by category", shares, unit="%") if shares else None,
        ),
        Chart(
            "Sessions sending Global Privacy Control",
            charts.share("Sessions sending Global Privacy Control", gpc)
            if gpc is not None
            else None,
        ),
    ]
