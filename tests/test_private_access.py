"""Policy and the engine read a Session through its public engine side, never its private
fields: ``pending``, ``intents``, ``changed_keys()``, ``removed_keys``, ``data_view``,
``record`` and ``client`` to read; ``schedule_rotation``, ``stored`` and ``stored_deadline``
to write. The check reads the source, as ``tests/test_architecture.py`` does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from coatcheck import SessionManager
from coatcheck.core.session import NO_INTENTS, Intents, Session
from coatcheck.errors import SessionCommittedError
from coatcheck.stores import MemoryStore
from tests.support.clock import FakeClock

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "coatcheck"
READERS = ["core/policy.py", "engine/manager.py", "engine/accounts.py", "engine/clientside.py"]
PRIVATE = {name for name in vars(Session) if name.startswith("_") and not name.startswith("__")}
"""Session's private fields, properties and methods."""


def private_accesses(source: str) -> list[str]:
    """Every ``session._x`` (and ``<anything but self>._x`` for a private name of
    Session, whatever the variable is called), as ``line: expression``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__"):
            continue
        owner = node.value.id if isinstance(node.value, ast.Name) else None
        if owner == "session" or (owner != "self" and node.attr in PRIVATE):
            found.append((node.lineno, ast.unparse(node)))
    return [f"{line}: {text}" for line, text in sorted(found)]


def test_the_checker_finds_private_reads_and_writes() -> None:
    source = (
        "def plan(session, s, self):\n"
        "    if session._login:\n"  # a read
        "        session._handle = 'h'\n"  # a write
        "    s._record\n"  # another name for a Session
        "    self._records\n"  # the manager's own field: fine
        "    session.intents.login\n"  # public: fine
    )
    assert private_accesses(source) == [
        "2: session._login",
        "3: session._handle",
        "4: s._record",
    ]


@pytest.mark.parametrize("module", READERS)
def test_policy_and_engine_use_only_the_public_session(module: str) -> None:
    assert private_accesses((PACKAGE / module).read_text()) == []


def test_intents_are_one_value_changed_only_by_the_sessions_methods(clock: FakeClock) -> None:
    manager = SessionManager(MemoryStore(), clock=clock)
    session = manager.load_sync(None)
    assert session.intents is NO_INTENTS and session.pending is False
    session.regenerate()
    assert session.intents == Intents(regenerate=True) and session.pending
    session.login("alice", remember=True, level=2)
    after_login = session.intents
    assert after_login == Intents(login=True, regenerate=True, meta_changed=True)
    assert (session.user_id, session.remember, session.auth_level) == ("alice", True, 2)
    session.set_remember(False)  # the login's choice changes; nothing else does
    assert (session.remember, session.auth_level, session.intents) == (False, 2, after_login)
    session.logout()
    assert session.intents == Intents(logout=True, ended=True)
    with pytest.raises(RuntimeError, match="pending login"):
        session.set_remember(True)
    with pytest.raises(AttributeError):
        session.intents.login = True  # type: ignore[misc]


def test_pending_turns_true_at_anything_a_commit_must_look_at(clock: FakeClock) -> None:
    manager = SessionManager(MemoryStore(), clock=clock)
    first = manager.load_sync(None)
    first["cart"] = ["tea"]
    first["n"] = 1
    token = manager.commit_sync(first).token
    for act in (
        lambda s: s.get("n"),  # a scalar read: nothing to look at
        lambda s: "cart" in s,
        lambda s: len(s),
    ):
        session = manager.load_sync(token)
        act(session)
        assert session.pending is False
    for act in (
        lambda s: s.__setitem__("n", 2),
        lambda s: s.__delitem__("n"),
        lambda s: s.get("cart"),  # a list read: it may be changed in place
        lambda s: s.set_meta("theme", "dark"),
        lambda s: s.regenerate(),
        lambda s: s.login("bob"),
        lambda s: s.logout(),
        lambda s: s.schedule_rotation(),
    ):
        session = manager.load_sync(token)
        act(session)
        assert session.pending is True
    committed = manager.load_sync(token)
    manager.commit_sync(committed)
    with pytest.raises(SessionCommittedError):
        committed.set_remember(True)


def test_the_data_delta_is_read_without_being_tracked(clock: FakeClock) -> None:
    manager = SessionManager(MemoryStore(), clock=clock)
    first = manager.load_sync(None)
    first.update({"cart": ["tea"], "n": 1, "gone": 0})
    token = manager.commit_sync(first).token
    session = manager.load_sync(token)
    assert session.data_view == {"cart": ["tea"], "n": 1, "gone": 0}
    assert session.pending is False  # reading the view snapshots nothing
    session["cart"].append("jam")  # read through the mapping, changed in place
    session["n"] = 2
    del session["gone"]
    assert set(session.changed_keys()) == {"cart", "n"}
    assert set(session.removed_keys) == {"gone"}
    manager.commit_sync(session)
    assert dict(manager.load_sync(token)) == {"cart": ["tea", "jam"], "n": 2}
