"""What a session remembers about the client that opened it, minimised for privacy.

IP addresses are truncated before they are kept (IPv4 to /24, IPv6 to /48), which is
enough to show "a device near Berlin" in a sessions list without keeping personal data
that a session layer has no use for.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

MAX_USER_AGENT = 256
"""User agents are cut to this many characters: enough to name a browser, bounded in size."""


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


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """The client facts a session records at creation and login."""

    user_agent: str | None = None
    ip: str | None = None

    @classmethod
    def from_raw(cls, user_agent: str | None, ip: str | None) -> ClientInfo:
        """Build from untrusted request values: truncate the IP, bound the user agent."""
        ua = user_agent[:MAX_USER_AGENT] if user_agent else None
        return cls(user_agent=ua, ip=truncate_ip(ip))
