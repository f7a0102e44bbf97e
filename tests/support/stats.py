"""``coatcheck stats`` against any store that offers ``stats_sync``: the same five sessions,
the same expected counts, through the method and (given a URL) through the command."""

from __future__ import annotations

import time
from typing import Any

from click.testing import CliRunner

from coatcheck.cli import build_cli
from coatcheck.core import tokens
from coatcheck.core.record import SessionRecord


def check_stats(store: Any, url: str | None) -> None:
    """Fill an empty ``store`` and check what ``coatcheck stats`` reports of it."""
    now = time.time()  # the command reads the real clock

    def stored(user_id: str | None, expires_in: float) -> None:
        store.create_sync(
            SessionRecord(
                key=tokens.storage_key(tokens.new_token()),
                handle=tokens.new_handle(),
                data={},
                created_at=now,
                last_seen_at=now,
                expires_at=now + expires_in,
                absolute_at=now + 3600,
                user_id=user_id,
            )
        )

    for user_id, expires_in in [
        ("alice", 1800),
        ("alice", 60),  # expiring soon
        ("alice", 1800),
        ("bob", 1800),
        (None, 120),  # anonymous, expiring soon
        ("carol", -5),  # ended: counted nowhere
    ]:
        stored(user_id, expires_in)
    numbers = store.stats_sync(now, top=1, soon=300)
    assert numbers == {"active": 5, "expiring_soon": 2, "top_users": [("alice", 3)]}
    if url is None:
        return
    result = CliRunner().invoke(build_cli(), ["stats", "--store", url, "--top", "5"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:3] == [
        "Active sessions: 5",
        "Expiring within 300 s: 2",
        "Sessions per user (top):",
    ]
    assert [line.split() for line in lines[3:]] == [["alice", "3"], ["bob", "1"]]
