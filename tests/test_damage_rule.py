"""``core.record.damage``: which field of a record read back from a store is not what the
engine reads, by name (never by value). Every store asks it on every load; the
conformance suite (``tests/conformance/test_damaged_records.py``) damages real stores."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from coatcheck.core.record import SessionRecord, damage

SOUND = SessionRecord(
    key="k",
    handle="h",
    data={"cart": ["hat"]},
    created_at=1.0,
    last_seen_at=2,
    expires_at=3.0,
    absolute_at=4.0,
    user_id="alice",
    auth_at=1.0,
    remember=True,
    user_agent="UA",
    ip="192.0.2.1",
    meta={"level": 2, "csrf": "x" * 43, "reauth": True, "rotated_at": 1.5},
)


def test_a_sound_record_and_a_rotation_marker_have_no_damage() -> None:
    assert damage(SOUND) is None
    anonymous = dataclasses.replace(
        SOUND, user_id=None, auth_at=None, user_agent=None, ip=None, meta={}, remember=False
    )
    assert damage(anonymous) is None
    marker = dataclasses.replace(SOUND, meta={"rotated_to": "h2", "rotated_at": 9.0})
    assert damage(marker) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("handle", ""),
        ("handle", 42),
        ("data", [1, 2]),
        ("data", None),
        ("created_at", "soon"),
        ("last_seen_at", None),
        ("expires_at", float("nan")),
        ("absolute_at", float("inf")),
        ("expires_at", True),
        ("user_id", ""),
        ("user_id", 7),
        ("auth_at", "then"),
        ("remember", "yes"),
        ("remember", 1),
        ("user_agent", ["UA"]),
        ("ip", 19216801),
        ("meta", [1]),
        ("meta", None),
    ],
)
def test_each_field_of_another_type_is_named(field: str, value: Any) -> None:
    assert damage(dataclasses.replace(SOUND, **{field: value})) == field


@pytest.mark.parametrize(
    ("meta", "named"),
    [
        ({"level": "high"}, "meta['level']"),
        ({"level": True}, "meta['level']"),
        ({"level": None}, "meta['level']"),
        ({"csrf": 12345}, "meta['csrf']"),
        ({"reauth": "yes"}, "meta['reauth']"),
        ({"rotated_at": "yesterday"}, "meta['rotated_at']"),
        ({"rotated_at": float("nan")}, "meta['rotated_at']"),
        ({"rotated_to": 5, "rotated_at": 1.0}, "meta['rotated_to']"),
        ({"rotated_to": "h2"}, "meta['rotated_at']"),
    ],
)
def test_engine_metadata_of_another_type_is_named(meta: dict[str, Any], named: str) -> None:
    assert damage(dataclasses.replace(SOUND, meta=meta)) == named


def test_metadata_the_engine_does_not_read_is_the_apps_business() -> None:
    assert damage(dataclasses.replace(SOUND, meta={"created_by": "service", "x": [None]})) is None
