"""What a session remembers about the client that opened it, minimised for privacy
(GDPR Art. 5(1)(c) and 25: data protection by default).

IP addresses are truncated before they are kept (IPv4 to /24, IPv6 to /48 by default:
``SessionConfig.ip_truncation``), which is enough to show "a device near Berlin" in a
sessions list. User agents are reduced to browser family (and major version, when a parser
is installed: ``coatcheck.privacy.minimise``), OS family and device class before they are
kept; the full string is used only as a keyed hash for the client-change check, and only
when a key is configured (``SessionConfig.user_agent_key``).

What is kept is decided by ``ClientRules``, built once per manager; a ``ClientInfo`` holds
the raw request values and applies the rules lazily, on first read, so an ordinary request
pays nothing for them.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_USER_AGENT = 256
"""User agents are cut to this many characters before anything reads them: bounded work."""

UA_HASH_KEY = "uah"
"""Engine metadata key of the keyed hash of the full user agent (client-change check)."""


@functools.lru_cache(maxsize=4096)
def truncate_ip(address: str | None, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> str | None:
    """Zero the host part of an address: past ``ipv4_prefix`` bits of IPv4 (the last octet
    by default), past ``ipv6_prefix`` bits of IPv6 (the last 80 by default).

    Returns None for anything that is not an IP address (a Unix socket path, garbage).
    """
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = ipv4_prefix if ip.version == 4 else ipv6_prefix
    network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    return str(network.network_address)


def whole_ip(address: str | None) -> str | None:
    """The address as it came (``ip_truncation="none"``, the named opt-out), normalised;
    None for anything that is not an IP address."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


_BOT = re.compile(r"bot|crawl|spider|slurp|curl|wget|python-|httpx|okhttp|go-http", re.I)
_BROWSERS = (
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Windows", "Windows"),
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iOS"),
    ("iPod", "iOS"),
    ("CrOS", "Chrome OS"),
    ("Macintosh", "Mac OS X"),
    ("Mac OS X", "Mac OS X"),
    ("Linux", "Linux"),
)


def device_class(raw: str) -> str:
    """``bot``, ``tablet``, ``mobile``, ``desktop`` or ``other``: the coarse class of the
    device a user agent names."""
    if _BOT.search(raw):
        return "bot"
    if "iPad" in raw or "Tablet" in raw or ("Android" in raw and "Mobile" not in raw):
        return "tablet"
    if "Mobi" in raw or "iPhone" in raw or "iPod" in raw:
        return "mobile"
    if raw.startswith("Mozilla/"):
        return "desktop"
    return "other"


def coarse_family(raw: str) -> str:
    """The browser family a user agent names (``Chrome``, ``Firefox``, ...; ``Bot`` for a
    crawler or a script, ``Other`` when unknown), with no version."""
    if _BOT.search(raw):
        return "Bot"
    for marker, family in _BROWSERS:
        if marker in raw:
            return family
    return "Other"


def os_family(raw: str) -> str:
    """The operating system family a user agent names, with no version (``Other``)."""
    for marker, family in _SYSTEMS:
        if marker in raw:
            return family
    return "Other"


def coarse_user_agent(raw: str) -> str:
    """The standard library's reduction: ``"<browser family> / <OS family> / <device
    class>"``, no version at all (``coatcheck.privacy.minimise`` adds the browser's major
    version when ua-parser is installed)."""
    return f"{coarse_family(raw)} / {os_family(raw)} / {device_class(raw)}"


@dataclass(frozen=True, slots=True)
class ClientRules:
    """What a manager keeps of a client: IP prefixes (None: the whole address, the named
    opt-out ``ip_truncation="none"``), how a user agent is reduced, and the key of the
    user agent's hash (None: no hash is kept, the check compares the reduced forms)."""

    ip_prefixes: tuple[int, int] | None = (24, 48)
    reduce_user_agent: Callable[[str], str] = coarse_user_agent
    hash_key: bytes | None = None

    def ip(self, address: str | None) -> str | None:
        prefixes = self.ip_prefixes
        if prefixes is None:
            return whole_ip(address)
        return truncate_ip(address, prefixes[0], prefixes[1])

    def user_agent(self, raw: str) -> str:
        return _reduced(self.reduce_user_agent, raw)

    def user_agent_hash(self, raw: str) -> str | None:
        key = self.hash_key
        return _keyed_hash(key, raw) if key is not None else None


@functools.lru_cache(maxsize=4096)
def _reduced(reduce: Callable[[str], str], raw: str) -> str:
    return reduce(raw)[:MAX_USER_AGENT]


@functools.lru_cache(maxsize=4096)
def _keyed_hash(key: bytes, raw: str) -> str:
    """HMAC-SHA256 of the full user agent, its first 16 bytes in hex: equal strings give
    equal hashes, and without the key nobody can test a guess against a stored one."""
    return hmac.new(key, raw.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]


DEFAULT_RULES = ClientRules()
"""The rules of a ClientInfo no manager has given its own (/24, /48, the coarse reduction,
no hash)."""


class ClientInfo:
    """The client facts a session records at creation and login, and the request's Global
    Privacy Control signal (``Sec-GPC: 1``).

    Built from untrusted request values on every request, but only read when a session is
    created or logged in (and, for the change check, hashed or reduced once per distinct
    user agent); so nothing is reduced until it is read. The manager that loads a session
    gives the client its ``rules`` (``SessionConfig.ip_truncation``, the user agent key).
    """

    __slots__ = ("_raw_user_agent", "address", "gpc", "rules")

    def __init__(
        self, user_agent: str | None = None, ip: str | None = None, gpc: bool = False
    ) -> None:
        self._raw_user_agent = user_agent[:MAX_USER_AGENT] if user_agent else None
        self.address = ip
        """The full client address, for rate limits only: never stored. (A plain
        attribute, not a property: the throttle reads it on every load.)"""
        self.gpc = gpc
        """The request carried ``Sec-GPC: 1``: a refusal of analytics and marketing."""
        self.rules = DEFAULT_RULES

    @classmethod
    def from_raw(cls, user_agent: str | None, ip: str | None, gpc: bool = False) -> ClientInfo:
        """Build from untrusted request values (kept raw until read)."""
        return cls(user_agent, ip, gpc)

    @property
    def user_agent(self) -> str | None:
        """The reduced user agent (browser family, OS family, device class): what is kept."""
        ua = self._raw_user_agent
        return self.rules.user_agent(ua) if ua else None

    @property
    def user_agent_hash(self) -> str | None:
        """The keyed hash of the full user agent, or None (no key, or no user agent)."""
        ua = self._raw_user_agent
        return self.rules.user_agent_hash(ua) if ua else None

    @property
    def ip(self) -> str | None:
        """The address as it is kept (truncated unless the rules say ``none``)."""
        return self.rules.ip(self.address)

    def changes(
        self, user_agent: str | None, ip: str | None, user_agent_hash: str | None = None
    ) -> str:
        """Which recorded facts (None: not recorded) this client no longer matches:
        "user_agent", "ip_network", both joined by a comma, or "" for none. Runs on every
        load of a recorded session. A recorded hash of the user agent is compared when this
        client has one too (the full string, keyed); otherwise the reduced forms are. A
        record kept before reduction (the full string) still matches the same client."""
        raw = self._raw_user_agent
        ua_changed = False
        if user_agent_hash is not None and raw and self.rules.hash_key is not None:
            ua_changed = user_agent_hash != self.user_agent_hash
        elif user_agent is not None:
            ua_changed = user_agent != raw and user_agent != self.user_agent
        ip_changed = ip is not None and ip != self.ip
        if not (ua_changed or ip_changed):
            return ""
        if ua_changed and ip_changed:
            return "user_agent,ip_network"
        return "user_agent" if ua_changed else "ip_network"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClientInfo):
            return NotImplemented
        return (self.user_agent, self.ip) == (other.user_agent, other.ip)

    def __hash__(self) -> int:
        return hash((self.user_agent, self.ip))

    def __repr__(self) -> str:
        return f"ClientInfo(user_agent={self.user_agent!r}, ip={self.ip!r}, gpc={self.gpc!r})"
