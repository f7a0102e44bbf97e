"""Records damaged outside coatcheck: every store's load paths hand them to ``sound``.

A row edited by hand, a key another program wrote under the store's prefix, a file half
written: what a store reads back may not be a record it wrote. Such a record counts as
no record (the request gets a fresh session, as for an unknown token), the device list
and the operator's commands skip it, and one warning says so on the ``coatcheck.stores``
logger, naming the store, the field and the record's public handle when it has one
(never its key: that is a token's SHA-256, and never a value: that may be personal data).
The record itself stays where it is for the operator to inspect; its deadline or the
store's own expiry removes it.
"""

from __future__ import annotations

import logging
import re

from coatcheck.core.record import SessionRecord, damage

logger = logging.getLogger("coatcheck.stores")

_HANDLE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def warn(store: str, reason: str, handle: object = None) -> None:
    """Log that a damaged record of ``store`` was skipped, and why."""
    shown = f" (handle {handle})" if isinstance(handle, str) and _HANDLE.fullmatch(handle) else ""
    logger.warning(
        "%s store: a damaged session record%s was skipped: %s; it counts as no session",
        store,
        shown,
        reason,
    )


def sound(record: SessionRecord, store: str) -> SessionRecord | None:
    """``record`` when nothing is wrong with it; otherwise None, with a warning."""
    reason = damage(record)
    if reason is None:
        return record
    warn(store, f"{reason} is not what coatcheck writes", record.handle)
    return None
