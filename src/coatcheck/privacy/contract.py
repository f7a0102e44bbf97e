"""The personal-data contract: every part of coatcheck that holds data about a person
implements it, and export and erasure go through it only.

GDPR Art. 15 and 20 (access, portability) and Art. 17 (erasure) ask for *everything* held
about a person. A list kept by hand drifts the day a new table is added, so each holder
declares itself with :func:`personal_data_holder` and ``tests`` assert that every class
implementing the contract is declared; export and erase walk the declared holders and know
nothing else about them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, runtime_checkable


@runtime_checkable
class PersonalDataHolder(Protocol):
    """Something that keeps data about a user.

    ``name`` is the holder's section in an export document (``"sessions"``, ``"consent"``,
    ``"page_views"``, ...). ``export_user`` returns everything held about that user and
    nothing about anyone else, as JSON-ready values; ``erase_user`` deletes it and returns how
    many items went. Both take the user id as the store files it (``core.record.user_key``).
    """

    name: str

    async def export_user(self, user_id: str) -> Mapping[str, Any]:
        """Everything this holder keeps about ``user_id``."""
        ...

    async def erase_user(self, user_id: str) -> int:
        """Delete what this holder keeps about ``user_id``; the number of items removed."""
        ...


def json_time(at: float | None) -> str | None:
    """A time as holders export it: ISO 8601 in UTC (``2027-01-15T08:00:00Z``), which a
    person reads and every language parses (GDPR Art. 20: a commonly used format)."""
    if at is None:
        return None
    text = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return text.replace(".000+00:00", "Z").replace("+00:00", "Z")


H = TypeVar("H", bound=type)

DECLARED_HOLDERS: dict[str, type] = {}
"""Every holder class in the package, by ``name``; filled by :func:`personal_data_holder`."""


def personal_data_holder(cls: H) -> H:
    """Declare a holder class, so export and erasure (and the test that no holder is
    forgotten) can find it. The class must have a string ``name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} needs a non-empty class attribute 'name'")
    if DECLARED_HOLDERS.get(name, cls) is not cls:
        raise TypeError(f"two personal-data holders named {name!r}")
    DECLARED_HOLDERS[name] = cls
    return cls


@runtime_checkable
class Retaining(Protocol):
    """A holder whose rows have a retention period (GDPR Art. 5(1)(e)).

    ``retention`` names the periods of ``RetentionPeriods`` its rows fall under;
    ``purge_older_than`` gets every period's cutoff (a time: rows older are past it),
    deletes what is past, ``batch`` rows per transaction, and returns how many went.
    """

    retention: tuple[str, ...]

    async def purge_older_than(self, cutoffs: Mapping[str, float], batch: int) -> int:
        """Delete the rows past their retention period; the number deleted."""
        ...


@runtime_checkable
class Scrubbing(Protocol):
    """A holder whose deletions may leave copies in files (a SQLite WAL): ``scrub`` runs
    after an erasure so that no page still holds what was erased."""

    async def scrub(self) -> None:
        """Leave no copy of deleted data in the holder's files."""
        ...
