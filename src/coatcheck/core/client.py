"""What a session remembers about the client that opened it, minimised for privacy.

IP addresses are truncated before they are kept (IPv4 to /24, IPv6 to /48), which is
enough to show "a device near Berlin" in a sessions list without keeping personal data
that a session layer has no use for.
"""

from __future__ import annotations

import functools
import ipaddress

MAX_USER_AGENT = 256
"""User agents are cut to this many characters: enough to name a browser, bounded in size."""


@functools.lru_cache(maxsize=4096)
def truncate_ip(address: str | None) -> str | None:
    """Zero the host part of an address: the last octet of IPv4, the last 80 bits of IPv6.

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
    prefix = 24 if ip.version == 4 else 48
    network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    return str(network.network_address)


_UNSET = object()


class ClientInfo:
    """The client facts a session records at creation and login.

    Built from untrusted request values on every request, but only read when a session is
    created or logged in; so the IP is truncated lazily, on first read, and an ordinary
    request pays nothing for it. Reads are always bounded and truncated.
    """

    __slots__ = ("_ip", "_raw_user_agent", "address")

    def __init__(self, user_agent: str | None = None, ip: str | None = None) -> None:
        self._raw_user_agent = user_agent
        self.address = ip
        """The full client address, for rate limits only: never stored. (A plain
        attribute, not a property: the throttle reads it on every load.)"""
        self._ip: object = _UNSET

    @classmethod
    def from_raw(cls, user_agent: str | None, ip: str | None) -> ClientInfo:
        """Build from untrusted request values (kept raw until read)."""
        return cls(user_agent, ip)

    @property
    def user_agent(self) -> str | None:
        ua = self._raw_user_agent
        return ua[:MAX_USER_AGENT] if ua else None

    @property
    def ip(self) -> str | None:
        if self._ip is _UNSET:
            self._ip = truncate_ip(self.address)
        return self._ip  # type: ignore[return-value]

    def changes(self, user_agent: str | None, ip: str | None) -> str:
        """Which recorded facts (None: not recorded) this client no longer matches:
        "user_agent", "ip_network", both joined by a comma, or "" for none. Runs on every
        load of a recorded session; the IP is truncated only when one was recorded."""
        ua_changed = user_agent is not None and user_agent != self.user_agent
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
        return f"ClientInfo(user_agent={self.user_agent!r}, ip={self.ip!r})"
