"""Reading the range of a report: ``7d``, ``24h``, ``30m``, ``2w`` (a span back from now),
or an ISO 8601 date or time (UTC when it names no zone), or epoch seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

__all__ = ["parse_when"]

_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(text: str, now: float) -> float:
    """Epoch seconds for ``text`` (see the module); ValueError naming it otherwise."""
    value = text.strip()
    span = _SPAN.fullmatch(value)
    if span:
        return now - float(span.group(1)) * _UNITS[span.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a span (7d, 24h), an ISO 8601 date or time, or epoch seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
