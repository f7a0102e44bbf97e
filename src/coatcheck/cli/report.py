"""How the session commands show what they found: a user's sessions as a table, a store's
statistics as lines. Public handles and metadata only, never a credential."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coatcheck.cli.common import CommandError, printable, utc
from coatcheck.engine.manager import SessionInfo, SessionManager
from coatcheck.stores.base import Countable, Statistics

if TYPE_CHECKING:
    from rich.table import Table

    from coatcheck.service.apikeys import ApiKey
    from coatcheck.service.signing import SigningKey


def sessions_table(sessions: Sequence[SessionInfo]) -> Table:
    """A user's sessions as a Rich table: public handles and metadata, never a credential."""
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("handle", no_wrap=True)
    for name in ("created (UTC)", "last seen (UTC)", "expires (UTC)"):
        table.add_column(name)
    table.add_column("user agent", overflow="fold")
    table.add_column("ip", no_wrap=True)
    for info in sessions:
        table.add_row(
            Text(info.handle),
            utc(info.created_at),
            utc(info.last_seen_at),
            utc(info.expires_at),
            Text(printable(info.user_agent)),
            Text(printable(info.ip)),
        )
    return table


def store_stats(manager: SessionManager, *, top: int, soon: float) -> dict[str, Any]:
    """``active`` live sessions, and where the store offers them (``Statistics``),
    ``expiring_soon`` (within ``soon`` seconds) and ``top_users`` as (user id, sessions)."""
    now = manager.clock()
    store = manager.store
    if isinstance(store, Statistics):
        return dict(store.stats_sync(now, top=top, soon=soon))
    if isinstance(store, Countable):
        return {"active": store.count_sync(now)}
    raise CommandError(
        f"this store cannot count its sessions ({type(store).__name__} is not Countable)"
    )


def stats_lines(stats: dict[str, Any], soon: float) -> list[str]:
    lines = [f"Active sessions: {stats['active']}"]
    if "expiring_soon" in stats:
        lines.append(f"Expiring within {soon:g} s: {stats['expiring_soon']}")
    if "top_users" in stats:
        lines.append("Sessions per user (top):" if stats["top_users"] else "No logged-in users.")
        lines += [f"  {printable(user)}  {count}" for user, count in stats["top_users"]]
    if len(lines) == 1:
        lines.append("(this store counts sessions only)")
    return lines


def keys_table(keys: Sequence[ApiKey]) -> Table:
    """API keys as a Rich table: names, scopes and times, never a key or its hash."""
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for name in ("name", "scopes", "created (UTC)", "last used (UTC)"):
        table.add_column(name, no_wrap=True)
    for key in keys:
        used = utc(key.last_used_at) if key.last_used_at is not None else "never"
        table.add_row(Text(key.name), ", ".join(sorted(key.scopes)), utc(key.created_at), used)
    return table


def ring_table(keys: Sequence[SigningKey], now: float) -> Table:
    """The JWT signing keys: which signs, which waits to, until when each retired one is
    published."""
    from rich.table import Table

    from coatcheck.service.signing import RETENTION, signing_key

    signer = signing_key({k.kid: k for k in keys}, now)
    table = Table()
    for name in ("kid", "algorithm", "created (UTC)", "state"):
        table.add_column(name, no_wrap=True)
    for key in keys:
        if signer is not None and key.kid == signer.kid:
            state = "signing"
        elif key.active_at > now:
            state = f"signs from {utc(key.active_at)}"
        elif key.retired_at is not None and key.published_at(now):
            state = f"published until {utc(key.retired_at + RETENTION)}"
        else:
            state = "expired"
        table.add_row(key.kid, key.alg, utc(key.created_at), state)
    return table
