"""Fork-safety checks shared by the networked stores' tests."""

from __future__ import annotations

import os

from coatcheck.core.record import SessionRecord
from coatcheck.stores.base import Store


def assert_each_process_reads_its_own(
    store: Store, parent: SessionRecord, child: SessionRecord, rounds: int = 300
) -> None:
    """Fork after ``store`` has a kept connection open, then have both processes load at
    once, each its own record: a pre-forking server (gunicorn --preload) does this. A store
    that let the child talk on its parent's sockets hands one process the other's reply,
    that is, another user's session."""
    assert store.get_sync(parent.key) == parent  # the parent's kept connection is open
    pid = os.fork()
    if pid == 0:  # pragma: no cover (runs in the child, which reports by exit code)
        code = 1
        try:
            code = 0 if all(store.get_sync(child.key) == child for _ in range(rounds)) else 2
        finally:
            os._exit(code)
    mine = [store.get_sync(parent.key) == parent for _ in range(rounds)]
    _, status = os.waitpid(pid, 0)
    assert all(mine)
    assert os.waitstatus_to_exitcode(status) == 0
