"""Charts as inline SVG, drawn on the server: pure functions from figures to markup.

No chart library, no script, no CDN: a dashboard page is HTML and SVG that the service
renders whole, so it works under a strict Content-Security-Policy (no inline style, no
script) and in any browser. Colours and fonts come from the stylesheet through class names
(``bar``, ``line``, ``axis``, ``label``), never a ``style`` attribute.

Every function returns a complete ``<svg>`` element with ``role="img"``, a ``<title>``
naming the chart and a ``<desc>`` listing its figures, so a screen reader says what a
sighted reader sees. Labels are escaped here (routes and user agents reach them). The
geometry is fixed and simple enough to be checked by hand (``tests/test_admin_charts.py``):

- ``bars``: one horizontal bar per row, ``ROW`` pixels apart; the bar of row ``i`` starts
  at ``x = LABEL`` and ``y = i * ROW + 4``, is ``BAR`` high and ``value / max * span``
  wide, where ``span = width - LABEL - VALUE``.
- ``columns`` (histograms, counts per day): ``n`` columns over the plot area
  ``[PAD_LEFT, width - PAD_RIGHT]``, each ``plot / n`` wide less a 2-pixel gap, as high as
  ``value / max`` of ``height - PAD_TOP - PAD_BOTTOM``, standing on the base line.
- ``line``: point ``i`` of ``n`` at ``x = PAD_LEFT + i * plot / (n - 1)`` and
  ``y = PAD_TOP + (1 - value / max) * (height - PAD_TOP - PAD_BOTTOM)``.
- ``share``: one bar ``width`` wide, the first ``share * width`` pixels filled.

Coordinates are rounded to one decimal place and printed without a trailing ``.0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

ROW: Final = 24
BAR: Final = 16
LABEL: Final = 200
"""Width of the label column of a bar chart."""
VALUE: Final = 56
"""Room right of the longest bar for its figure."""
PAD_LEFT: Final = 40
PAD_RIGHT: Final = 10
PAD_TOP: Final = 10
PAD_BOTTOM: Final = 24
WIDTH: Final = 480
HEIGHT: Final = 160

Point = tuple[str, float]
"""A label and its value."""


def num(value: float) -> str:
    """``value`` rounded to one decimal place, without a trailing ``.0``."""
    rounded = round(float(value), 1)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.1f}"


def _svg(title: str, width: float, height: float, body: list[str], points: Sequence[Point]) -> str:
    desc = "; ".join(f"{label}: {num(value)}" for label, value in points) or "no data"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{num(width)}" height="{num(height)}" '
        f'viewBox="0 0 {num(width)} {num(height)}">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>" + "".join(body) + "</svg>"
    )


def _top(points: Sequence[Point]) -> float:
    """The value the tallest bar stands for (1 when every value is 0, so nothing divides
    by zero and empty bars stay empty)."""
    top = max((max(value, 0.0) for _, value in points), default=0.0)
    return top if top > 0 else 1.0


def _text(x: float, y: float, text: str, css: str, anchor: str = "start") -> str:
    return (
        f'<text x="{num(x)}" y="{num(y)}" class="{css}" text-anchor="{anchor}">'
        f"{escape(text)}</text>"
    )


def bars(title: str, points: Sequence[Point], width: float = WIDTH, unit: str = "") -> str:
    """Horizontal bars, one per ``(label, value)``, longest scale at the largest value."""
    span = width - LABEL - VALUE
    top = _top(points)
    body: list[str] = []
    for i, (label, value) in enumerate(points):
        y = i * ROW + 4
        length = max(value, 0.0) / top * span
        body.append(_text(LABEL - 8, y + 12, label, "label", "end"))
        body.append(f'<rect class="bar" x="{LABEL}" y="{y}" width="{num(length)}" height="{BAR}"/>')
        body.append(_text(LABEL + length + 6, y + 12, num(value) + unit, "value"))
    return _svg(title, width, max(len(points), 1) * ROW, body, points)


def columns(
    title: str,
    points: Sequence[Point],
    width: float = WIDTH,
    height: float = HEIGHT,
) -> str:
    """Vertical columns (a histogram, or one count per day), labelled below."""
    plot = width - PAD_LEFT - PAD_RIGHT
    tall = height - PAD_TOP - PAD_BOTTOM
    base = height - PAD_BOTTOM
    top = _top(points)
    body = [_axes(width, height, top)]
    step = plot / len(points) if points else plot
    for i, (label, value) in enumerate(points):
        x = PAD_LEFT + i * step
        rise = max(value, 0.0) / top * tall
        body.append(
            f'<rect class="bar" x="{num(x + 1)}" y="{num(base - rise)}" '
            f'width="{num(max(step - 2, 0.0))}" height="{num(rise)}"/>'
        )
        body.append(_text(x + step / 2, height - 8, label, "label", "middle"))
    return _svg(title, width, height, body, points)


def line(
    title: str,
    points: Sequence[Point],
    width: float = WIDTH,
    height: float = HEIGHT,
) -> str:
    """A line through ``points`` (left to right in order), with the first and last label
    below it. One point stands alone at the middle."""
    plot = width - PAD_LEFT - PAD_RIGHT
    tall = height - PAD_TOP - PAD_BOTTOM
    top = _top(points)
    body = [_axes(width, height, top)]
    coords: list[tuple[float, float]] = []
    for i, (_, value) in enumerate(points):
        x = PAD_LEFT + (i * plot / (len(points) - 1) if len(points) > 1 else plot / 2)
        coords.append((x, PAD_TOP + (1 - max(value, 0.0) / top) * tall))
    if coords:
        joined = " ".join(f"{num(x)},{num(y)}" for x, y in coords)
        body.append(f'<polyline class="line" fill="none" points="{joined}"/>')
        for x, y in coords:
            body.append(f'<circle class="dot" cx="{num(x)}" cy="{num(y)}" r="2.5"/>')
        body.append(_text(coords[0][0], height - 8, points[0][0], "label", "start"))
        if len(coords) > 1:
            body.append(_text(coords[-1][0], height - 8, points[-1][0], "label", "end"))
    return _svg(title, width, height, body, points)


def share(title: str, value: float, width: float = WIDTH, label: str = "") -> str:
    """One bar ``width`` wide whose first ``value`` (0 to 1) is filled: a share."""
    part = min(max(value, 0.0), 1.0)
    body = [
        f'<rect class="track" x="0" y="0" width="{num(width)}" height="{BAR}"/>',
        f'<rect class="bar" x="0" y="0" width="{num(part * width)}" height="{BAR}"/>',
        _text(0, BAR + 14, label or f"{num(part * 100)}%", "value"),
    ]
    return _svg(title, width, BAR + 20, body, [(label or title, part * 100)])


def _axes(width: float, height: float, top: float) -> str:
    """The base line and the left axis, with the top value written beside it."""
    base = height - PAD_BOTTOM
    return (
        f'<line class="axis" x1="{PAD_LEFT}" y1="{num(base)}" '
        f'x2="{num(width - PAD_RIGHT)}" y2="{num(base)}"/>'
        f'<line class="axis" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{num(base)}"/>'
        + _text(PAD_LEFT - 4, PAD_TOP + 4, num(top), "label", "end")
    )
