"""A session record as the Redis store keeps it: one hash, and the patch a script applies.

The layout is the package docstring's: ``d:<name>`` fields hold the JSON text of each
session value; ``l``, ``e`` and ``a`` the last-seen time and the two deadlines as exact
decimal text (the scripts read them without decoding JSON); ``m`` the rest of the metadata
as one JSON object of strings under short names; ``s`` the size ``Patch.max_bytes`` is
checked against (the Lua ``measure`` helper keeps it with each write, so a commit never
reads the whole hash to measure it). ``decode`` runs on every load, so it is
written as one pass over the reply with no intermediate dict.

Pure functions and constants, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from coatcheck.core.atomic import INCR, OperationTypeError, SwapRefused
from coatcheck.core.record import PATCHABLE_FIELDS, Patch, SessionRecord, encode_key
from coatcheck.errors import SessionDataError, SessionTooLarge

PLAIN = {"last_seen_at": "l", "expires_at": "e", "absolute_at": "a"}
"""Record fields kept as hash fields of their own: the deadlines, which most commits
change and scripts read, are written and read without decoding any JSON."""

SHORT = {
    "handle": "h",
    "user_id": "u",
    "created_at": "c",
    "auth_at": "t",
    "remember": "r",
    "user_agent": "ua",
    "ip": "ip",
    "meta": "x",
}
"""The other record fields -> their names inside the packed metadata field "m" (short:
stored once per session, read on every request)."""


_json_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_value_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_json_value = json.JSONDecoder().decode


def num(value: float) -> str:
    """Seconds as text that round-trips exactly (repr of a float)."""
    return repr(float(value))


def ms(seconds: float) -> int:
    """Unix milliseconds for PEXPIREAT/PXAT (at least 1: zero and below are refused)."""
    return max(round(seconds * 1000), 1)


def encode_field(name: str, value: Any) -> str | None:
    """One metadata value as the string kept in "m"; None when it is left out (None,
    False, an empty ``meta``), which reads back as the same value."""
    if value is None:
        return None
    if name == "remember":
        return "1" if value else None
    if name == "meta":
        return _json_text(value) if value else None
    if name in ("handle", "user_id", "user_agent", "ip"):
        return str(value)
    return num(value)


def meta_text(record: SessionRecord) -> str:
    """The packed metadata field of a whole record."""
    packed: dict[str, str] = {}
    for name, short in SHORT.items():
        encoded = encode_field(name, getattr(record, name))
        if encoded is not None:
            packed[short] = encoded
    return _json_text(packed)


def record_fields(record: SessionRecord) -> list[str]:
    """Flat field/value list of a whole record, for HSET."""
    out = ["m", meta_text(record)]
    out += ("l", num(record.last_seen_at), "e", num(record.expires_at))
    out += ("a", num(record.absolute_at))
    total = 0
    for key, value in record.data.items():
        text = _value_text(value)
        out += ("d:" + key, text)
        total += len(encode_key(key).encode()) + len(text.encode()) + 2
    return [*out, "s", str(total)]


def patch_args(patch: Patch) -> list[str]:
    """The patch as the Lua ``patch`` helper reads it."""
    deletes = ["d:" + k for k in patch.removed]
    pairs: list[str] = []
    for k, v in patch.set_json.items():
        pairs += ("d:" + k, v)
    meta_deletes: list[str] = []
    meta_pairs: list[str] = []
    for name, value in patch.fields.items():
        if name not in PATCHABLE_FIELDS:
            raise ValueError(f"field {name!r} cannot be patched")
        plain = PLAIN.get(name)
        if plain is not None:
            pairs += (plain, num(value))  # deadlines are never None
            continue
        encoded = encode_field(name, value)
        if encoded is None:
            meta_deletes.append(SHORT[name])
        else:
            meta_pairs += (SHORT[name], encoded)
    ops: list[str] = []
    for kind, key, _, text in patch.ops:
        ops += (kind, "d:" + key, text)
    return [
        str(len(deletes)),
        *deletes,
        str(len(pairs) // 2),
        *pairs,
        str(len(meta_deletes)),
        *meta_deletes,
        str(len(meta_pairs) // 2),
        *meta_pairs,
        str(len(ops) // 3),
        *ops,
        "" if patch.max_bytes is None else str(patch.max_bytes),
    ]


NO_PATCH = ("0", "0", "0", "0", "0", "")

REFUSAL = "COATCHECK "
"""How the Lua ``patch`` helper's error replies begin: a refused patch, not a failure."""


def refusal(message: str) -> SessionDataError | None:
    """The error a script's refusal reply stands for (a type clash of an atomic
    operation, a patch over ``max_bytes``, a ``swap`` that found another value), or None
    for any other error reply."""
    at = message.find(REFUSAL)
    if at < 0:
        return None
    what, _, rest = message[at + len(REFUSAL) :].partition("|")
    if what == "large":
        size, _, limit = rest.partition("|")
        return SessionTooLarge(int(size), int(limit.split()[0]))
    kind, detail, key = rest.split("|", 2)
    key = key.split(" script: ")[0]  # (Redis 7 may add where the script failed)
    if what == "swap":
        return SwapRefused(key)
    if what == "beyond":
        return OperationTypeError(kind, key, f"the result {detail} is beyond ±2**53-1")
    if kind == INCR:
        return OperationTypeError(
            kind, key, f"the value is {detail}, not an integer within ±2**53-1"
        )
    return OperationTypeError(kind, key, f"the value is {detail}, not a list")


def unpack(text: str) -> dict[str, str] | None:
    """The packed metadata field's content, or None when it is not what this store wrote
    (not JSON, or without the handle and creation time)."""
    try:
        packed = _json_value(text)
    except ValueError:
        return None
    if not isinstance(packed, dict) or "h" not in packed or "c" not in packed:
        return None
    return packed


def decode(key: str, fields: Mapping[str, str] | Sequence[str]) -> SessionRecord | None:
    """A record from its hash (a mapping, or the flat field/value list of a reply that no
    client callback turned into one), or None when it is missing, incomplete or not what
    this store writes (a load then starts a fresh session, never a 500). Runs on every
    load: one pass, no intermediate dict."""
    flat = [x for kv in fields.items() for x in kv] if isinstance(fields, Mapping) else fields
    try:
        return _decoded(key, flat)
    except (KeyError, ValueError, TypeError):
        return None


def _decoded(key: str, flat: Sequence[str]) -> SessionRecord | None:
    loads = _json_value
    data: dict[str, Any] = {}
    text = last_seen = expires = absolute = None
    for i in range(0, len(flat) - 1, 2):
        name = flat[i]
        if name[:2] == "d:":
            data[name[2:]] = loads(flat[i + 1])
        elif name == "m":
            text = flat[i + 1]
        elif name == "l":
            last_seen = flat[i + 1]
        elif name == "e":
            expires = flat[i + 1]
        elif name == "a":
            absolute = flat[i + 1]
    if text is None or last_seen is None or expires is None or absolute is None:
        return None
    m = unpack(text)
    if m is None:
        return None
    if len(data) > 1:
        # A Redis hash keeps its fields in insertion order only while it is small (a
        # listpack); a long value (engine metadata after a login) turns it into a
        # hashtable, whose order is arbitrary. Sorted, the order is at least the same on
        # every load of the same data.
        data = dict(sorted(data.items()))
    get = m.get
    auth_at = get("t")
    meta = get("x")
    return SessionRecord(
        key=key,
        handle=m["h"],
        data=data,
        created_at=float(m["c"]),
        last_seen_at=float(last_seen),
        expires_at=float(expires),
        absolute_at=float(absolute),
        user_id=get("u"),
        auth_at=float(auth_at) if auth_at is not None else None,
        remember=get("r") == "1",
        user_agent=get("ua"),
        ip=get("ip"),
        meta=loads(meta) if meta is not None else {},
    )
