"""The dashboard's charts and figures (``coatcheck.service.admin.charts`` and
``figures``): every coordinate below is worked out by hand from the geometry the charts
module documents (width 480, height 160, label column 200, value room 56, padding 40 left,
10 right, 10 top, 24 bottom, rows 24 apart, bars 16 high)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from coatcheck.service.admin import charts, figures

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # also proves the markup is well-formed XML


def rects(svg: str) -> list[dict[str, str]]:
    return [dict(r.attrib) for r in parse(svg).iter(SVG + "rect")]


def texts(svg: str) -> list[tuple[str, str, str]]:
    return [(t.get("x", ""), t.get("y", ""), t.text or "") for t in parse(svg).iter(SVG + "text")]


def test_numbers_are_rounded_to_one_decimal_without_a_trailing_zero() -> None:
    assert charts.num(3.0) == "3"
    assert charts.num(2.46) == "2.5"
    assert charts.num(0) == "0"
    assert charts.num(107.5) == "107.5"


def test_bars_scale_to_the_largest_value() -> None:
    svg = charts.bars("Top pages", [("/", 8), ("/cart", 2)])
    root = parse(svg)
    assert root.get("role") == "img"
    assert (root.get("width"), root.get("height")) == ("480", "48")  # two rows of 24
    # span = 480 - 200 - 56 = 224; "/" is the largest (224 wide), "/cart" 2/8 of it.
    assert rects(svg) == [
        {"class": "bar", "x": "200", "y": "4", "width": "224", "height": "16"},
        {"class": "bar", "x": "200", "y": "28", "width": "56", "height": "16"},
    ]
    assert texts(svg) == [
        ("192", "16", "/"),  # labels end 8 px left of the bars, 12 px below the row top
        ("430", "16", "8"),  # figures 6 px right of the bar's end: 200 + 224 + 6
        ("192", "40", "/cart"),
        ("262", "40", "2"),  # 200 + 56 + 6
    ]
    assert root.find(SVG + "title").text == "Top pages"  # type: ignore[union-attr]
    assert root.find(SVG + "desc").text == "/: 8; /cart: 2"  # type: ignore[union-attr]


def test_bars_of_nothing_stay_empty_and_never_divide_by_zero() -> None:
    svg = charts.bars("Ends", [("logout", 0), ("idle", 0)])
    assert [r["width"] for r in rects(svg)] == ["0", "0"]
    assert parse(charts.bars("Ends", [])).get("height") == "24"  # one empty row


def test_columns_stand_on_the_base_line() -> None:
    svg = charts.columns("Visits per day", [("a", 1), ("b", 3), ("c", 0), ("d", 2)])
    # plot = 480 - 40 - 10 = 430, so each column is 107.5 wide less 2 (a 1 px margin each
    # side); tall = 160 - 10 - 24 = 126 and the base line is at y = 136; top value 3.
    bars = [r for r in rects(svg) if r["class"] == "bar"]
    assert bars == [
        {"class": "bar", "x": "41", "y": "94", "width": "105.5", "height": "42"},  # 1/3 of 126
        {"class": "bar", "x": "148.5", "y": "10", "width": "105.5", "height": "126"},
        {"class": "bar", "x": "256", "y": "136", "width": "105.5", "height": "0"},
        {"class": "bar", "x": "363.5", "y": "52", "width": "105.5", "height": "84"},  # 2/3
    ]
    labels = [t for t in texts(svg) if t[2] in "abcd"]
    # each label at the middle of its column (x + 53.75), 8 px above the bottom edge
    assert labels == [
        ("93.8", "152", "a"),
        ("201.2", "152", "b"),
        ("308.8", "152", "c"),
        ("416.2", "152", "d"),
    ]
    assert ("36", "14", "3") in texts(svg)  # the top value, left of the axis


def test_a_line_goes_through_each_point() -> None:
    svg = charts.line("Active sessions", [("Mon", 0), ("Tue", 4), ("Wed", 2)])
    (polyline,) = parse(svg).iter(SVG + "polyline")
    # x: 40, 40 + 430/2 = 255, 470; y: 10 + (1 - v/4) * 126 -> 136, 10, 73
    assert polyline.get("points") == "40,136 255,10 470,73"
    dots = [(c.get("cx"), c.get("cy")) for c in parse(svg).iter(SVG + "circle")]
    assert dots == [("40", "136"), ("255", "10"), ("470", "73")]
    assert ("40", "152", "Mon") in texts(svg) and ("470", "152", "Wed") in texts(svg)


def test_a_single_point_stands_in_the_middle() -> None:
    (polyline,) = parse(charts.line("One", [("now", 5)])).iter(SVG + "polyline")
    assert polyline.get("points") == "255,10"


def test_a_share_fills_its_part_of_the_bar() -> None:
    svg = charts.share("Logged in", 0.25)
    assert rects(svg)[1] == {"class": "bar", "x": "0", "y": "0", "width": "120", "height": "16"}
    assert texts(svg) == [("0", "30", "25%")]
    assert rects(charts.share("Over", 1.7))[1]["width"] == "480"  # clamped to the whole


def test_labels_are_escaped() -> None:
    svg = charts.bars("<b>", [("<script>alert(1)</script>", 1)])
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert texts(svg)[0][2] == "<script>alert(1)</script>"  # the text a reader sees


def test_rows_are_read_from_a_mapping_or_a_list_largest_first() -> None:
    assert figures.pairs({"logout": 3, "idle_expired": 7, "bad": "x"}) == [
        ("idle_expired", 7.0),
        ("logout", 3.0),
    ]
    rows = [{"route": "/", "views": 2}, {"route": "/p/{id}", "views": 5}, {"nothing": 1}, "x"]
    assert figures.pairs(rows) == [("/p/{id}", 5.0), ("/", 2.0)]
    assert figures.pairs([{"from": "/", "to": "/cart", "count": 4}]) == [("/ \u2192 /cart", 4.0)]
    assert figures.pairs(None) == [] and figures.pairs("text") == []


def test_series_buckets_in_time_order_and_histogram_labels() -> None:
    day = 86400
    summary = {
        "series": {
            "day": [
                {"start": 2 * day, "visits": 5},
                {"start": 0, "visits": 3},
                {"start": day, "visits": "x"},  # malformed: left out
            ]
        },
        "duration_histogram": [
            {"upto": 10, "visits": 4},
            {"upto": 90, "visits": 2},
            {"upto": None, "visits": 1},
        ],
    }
    assert figures.series(summary, "day", "visits", figures.day) == [
        ("Jan 01", 3.0),
        ("Jan 03", 5.0),
    ]
    assert figures.histogram(summary) == [
        ("\u226410s", 4.0),
        ("\u22641m 30s", 2.0),
        (">1m 30s", 1.0),
    ]
    assert figures.series({"series": "broken"}, "day", "visits", figures.day) == []


def test_a_summary_missing_keys_empties_only_those_charts() -> None:
    found = figures.overview_charts({"top_pages": [{"route": "/", "views": 1}]})
    drawn = {c.title for c in found if c.svg is not None}
    assert drawn == {"Top pages (views)"}
    assert len(found) == 10  # every chart is still on the page, with "no data"
    assert [v for _, v in figures.headline({"visits": 12, "bounce_rate": 0.25})][:4] == [
        "12",
        "-",
        "-",
        "25%",
    ]
    assert figures.duration(3725) == "1h 2m"
    assert (figures.duration(300), figures.duration(75)) == ("5m", "1m 15s")
    assert re.fullmatch(r"\d+s", figures.duration(42)) and figures.duration(None) == "-"
