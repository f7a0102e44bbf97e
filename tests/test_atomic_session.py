"""Atomic operations on the Session and what a commit plans from them, without a store.

The store-side semantics (each store, real servers, concurrency) are in
tests/conformance/test_atomic_ops.py; this file holds the rules of the Session: what the
handler sees at once, which operations reach the Patch, and how a write and an
operation of the same key combine (in order: the last one wins).
"""

from __future__ import annotations

from typing import Any

import pytest

from coatcheck import SessionConfig
from coatcheck.core.atomic import OperationTypeError, json_equal
from coatcheck.core.policy import Action, plan_commit
from coatcheck.core.record import Patch, SessionRecord
from coatcheck.core.session import Session
from coatcheck.errors import SessionCommittedError, SessionDataError, SessionTooLarge

NOW = 1_800_000_000.0
CONFIG = SessionConfig()


def loaded(data: dict[str, Any]) -> Session:
    record = SessionRecord("k", "h", data, NOW, NOW, NOW + 1800, NOW + 43200)
    return Session(record, NOW + 1)


def planned_patch(session: Session) -> Patch:
    plan = plan_commit(session, CONFIG, NOW + 2)
    assert plan.action is Action.UPDATE and plan.patch is not None
    return plan.patch


def test_operations_show_at_once_and_reach_the_patch_in_order() -> None:
    session = loaded({"n": 3, "cart": ["hat"]})
    assert session.incr("n") == 4
    assert session.incr("n", by=-10) == -6
    session.append("cart", {"sku": "scarf"})
    session.add_to_set("tags", "sale")
    session.add_to_set("tags", "sale")
    assert dict(session) == {"n": -6, "cart": ["hat", {"sku": "scarf"}], "tags": ["sale"]}
    assert session.modified
    patch = planned_patch(session)
    assert (patch.set_json, patch.removed) == ({}, frozenset())
    assert [op[:3] for op in patch.ops] == [
        ("incr", "n", 1),
        ("incr", "n", -10),
        ("append", "cart", {"sku": "scarf"}),
        ("add_to_set", "tags", "sale"),
        ("add_to_set", "tags", "sale"),
    ]
    assert [op[3] for op in patch.ops] == ["1", "-10", '{"sku":"scarf"}', '"sale"', '"sale"']
    assert patch.max_bytes == 64 * 1024


def test_the_loaded_record_is_never_changed_by_an_append() -> None:
    session = loaded({"cart": ["hat"]})
    record = session.record
    assert record is not None
    session.append("cart", "scarf")
    assert record.data == {"cart": ["hat"]}


def test_a_write_then_an_operation_is_one_write_of_the_result() -> None:
    session = loaded({"n": 100})
    session["n"] = 5
    assert session.incr("n") == 6
    patch = planned_patch(session)
    assert patch.set_json == {"n": "6"} and patch.ops == ()


def test_an_operation_then_a_write_sends_the_write_only() -> None:
    session = loaded({"n": 100, "cart": []})
    session.incr("n")
    session.append("cart", "hat")
    session["n"] = 0
    del session["cart"]
    patch = planned_patch(session)
    assert patch.set_json == {"n": "0"} and patch.removed == frozenset({"cart"})
    assert patch.ops == ()


def test_a_removal_then_an_operation_starts_from_nothing() -> None:
    session = loaded({"cart": ["old"]})
    del session["cart"]
    session.append("cart", "new")
    patch = planned_patch(session)
    assert patch.set_json == {"cart": '["new"]'} and patch.removed == frozenset()
    assert patch.ops == ()


def test_a_list_changed_in_place_then_appended_is_written_whole() -> None:
    session = loaded({"cart": ["hat"]})
    session["cart"].append("by hand")
    session.append("cart", "scarf")
    patch = planned_patch(session)
    assert patch.set_json == {"cart": '["hat","by hand","scarf"]'} and patch.ops == ()


def test_a_list_read_but_unchanged_keeps_the_operation_atomic() -> None:
    session = loaded({"cart": ["hat"]})
    assert session["cart"] == ["hat"]  # a read takes a snapshot
    session.append("cart", "scarf")
    patch = planned_patch(session)
    assert patch.set_json == {} and [op[:2] for op in patch.ops] == [("append", "cart")]


def test_a_change_in_place_after_an_operation_writes_the_whole_value() -> None:
    session = loaded({"cart": ["hat"]})
    session.append("cart", "scarf")
    session["cart"].append("by hand")
    patch = planned_patch(session)
    assert patch.set_json == {"cart": '["hat","scarf","by hand"]'} and patch.ops == ()


@pytest.mark.parametrize(
    ("data", "call", "message"),
    [
        ({"n": "five"}, lambda s: s.incr("n"), r"session\.incr\('n'.*a string"),
        ({"n": 1.0}, lambda s: s.incr("n"), r"session\.incr\('n'.*a float"),
        ({"n": 2**53 - 1}, lambda s: s.incr("n"), r"session\.incr\('n'.*beyond"),
        ({}, lambda s: s.incr("n", by=1.5), r"by=1\.5 is not an integer"),
        ({}, lambda s: s.incr("n", by=True), r"by=True is not an integer"),
        ({"c": {"a": 1}}, lambda s: s.append("c", 1), r"session\.append\('c'.*an object"),
        ({"c": "text"}, lambda s: s.add_to_set("c", 1), r"add_to_set\('c'.*a string"),
        ({}, lambda s: s.add_to_set("c", [1]), r"list values cannot be compared"),
        ({}, lambda s: s.add_to_set("c", 1.5), r"float values cannot be compared"),
    ],
)
def test_a_type_clash_or_a_bad_argument_raises_naming_the_key_and_changes_nothing(
    data: dict[str, Any], call: Any, message: str
) -> None:
    session = loaded(data)
    with pytest.raises(OperationTypeError, match=message) as caught:
        call(session)
    assert isinstance(caught.value, SessionDataError)
    assert dict(session) == data and session.ops == []


def test_an_argument_that_is_not_json_is_refused_naming_the_key() -> None:
    session = loaded({})
    with pytest.raises(SessionDataError, match=r"session\['cart'\] cannot be stored"):
        session.append("cart", object())
    assert session.ops == [] and "cart" not in session


def test_operations_after_the_commit_raise_and_logout_forgets_them() -> None:
    session = loaded({"n": 1})
    session.incr("n")
    session.logout()
    assert session.ops == []
    session.close()
    with pytest.raises(SessionCommittedError):
        session.incr("n")


def test_a_new_session_stores_the_results_whole() -> None:
    session = Session(None, NOW)
    session.incr("visits")
    session.append("cart", "hat")
    plan = plan_commit(session, CONFIG, NOW, "handle")
    assert plan.action is Action.CREATE and plan.record is not None
    assert plan.record.data == {"visits": 1, "cart": ["hat"]}


def test_a_touch_or_a_removal_carries_no_size_limit() -> None:
    # Only a patch that can grow the data is measured by the store.
    session = loaded({"a": 1})
    del session["a"]
    assert planned_patch(session).max_bytes is None
    session = loaded({"a": 1})
    session.keep_alive()
    plan = plan_commit(session, CONFIG, NOW + 2)
    assert plan.action is Action.TOUCH and plan.patch is not None
    assert plan.patch.max_bytes is None and plan.patch.ops == ()


def test_the_reference_patch_refuses_past_max_bytes_and_changes_nothing() -> None:
    record = SessionRecord("k", "h", {"n": 1}, NOW, NOW, NOW + 1800, NOW + 43200)
    # {"n":1,"s":"xxx"}: 2 braces + "n":1 (5) + comma + "s":"xxx" (9) = 17 bytes.
    fits = Patch({"s": '"xxx"'}, {"s": "xxx"}, max_bytes=17)
    fits.apply_to(record)
    assert record.data == {"n": 1, "s": "xxx"}
    over = Patch({"t": "1"}, {"t": 1}, ops=(("incr", "n", 1, "1"),), max_bytes=17)
    with pytest.raises(SessionTooLarge) as caught:
        over.apply_to(record)
    assert (caught.value.size, caught.value.limit) == (23, 17)  # + ,"t":1 (6 bytes)
    assert record.data == {"n": 1, "s": "xxx"}


def test_json_equality_of_set_elements() -> None:
    assert json_equal(1, 1.0) and json_equal("a", "a") and json_equal(None, None)
    assert not json_equal(True, 1) and not json_equal(1, True) and not json_equal(0, False)
    assert not json_equal("1", 1) and not json_equal(None, 0) and not json_equal([1], 1)
