"""A store that meets the core contract of ``coatcheck.stores.base`` and declares nothing
else: the afternoon's work of a new backend, kept as the proof that it is enough.

The conformance suite runs its core tests against it (``tests/conformance/factories/``) and
no capability test; ``tests/test_store_capabilities.py`` serves whole requests through a
manager over it. Records are kept as JSON text, so it stores only what a real backend can.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict

from coatcheck.core.record import Patch, SessionRecord
from coatcheck.stores.base import InlineStore


class CoreOnlyStore(InlineStore):
    """Five sync methods (``InlineStore`` gives the async ones) over a dict."""

    def __init__(self) -> None:
        self._rows: dict[str, str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _load(text: str) -> SessionRecord:
        return SessionRecord(**json.loads(text))

    def get_sync(self, key: str) -> SessionRecord | None:
        with self._lock:
            text = self._rows.get(key)
        return self._load(text) if text is not None else None

    def create_sync(self, record: SessionRecord) -> None:
        text = json.dumps(asdict(record))
        with self._lock:
            self._rows[record.key] = text

    def _patched(self, key: str, new_key: str, patch: Patch) -> bool:
        with self._lock:
            text = self._rows.get(key)
            if text is None:
                return False
            record = self._load(text)
            if not patch.fits(record.handle):
                return False
            patch.apply_to(record)
            record.key = new_key
            del self._rows[key]
            self._rows[new_key] = json.dumps(asdict(record))
            return True

    def apply_sync(self, key: str, patch: Patch) -> bool:
        return self._patched(key, key, patch)

    def rename_sync(self, old_key: str, new_key: str, patch: Patch) -> bool:
        return self._patched(old_key, new_key, patch)

    def delete_sync(self, key: str) -> bool:
        with self._lock:
            return self._rows.pop(key, None) is not None
