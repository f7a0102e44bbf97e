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
