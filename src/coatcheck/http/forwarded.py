"""Who the client is behind a reverse proxy: ``X-Forwarded-For`` and ``X-Forwarded-Proto``,
believed only from the proxies ``SessionConfig.trusted_proxies`` names.

Behind nginx every request's peer is nginx itself, so the unknown-token throttle would
count every user against one address and the "your devices" list would show the proxy.
The proxy appends the address it saw to ``X-Forwarded-For``, but anyone can send that
header, so it is read only when the direct peer is a trusted proxy, and then from the
right: each trusted hop is skipped, and the first address that is not a trusted proxy is
the client (what the client wrote further left is never believed). ``X-Forwarded-Proto``
gives the scheme the client used (https at a TLS-terminating proxy), which the CSRF check
needs to know the request's own origin; it too comes only from a trusted peer.

With no ``trusted_proxies`` (the default) ``Proxies.of`` is None and the edges use the
peer as is, at the cost of one test per request. Servers that rewrite the peer themselves
(uvicorn's ``--forwarded-allow-ips``, werkzeug's ``ProxyFix``) need no setting here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, Final

from coatcheck.core.config import SessionConfig

__all__ = ["FORWARDED_FOR", "FORWARDED_PROTO", "Proxies", "parse_network"]

FORWARDED_FOR: Final = "x-forwarded-for"
FORWARDED_PROTO: Final = "x-forwarded-proto"
_FOR_BYTES: Final = FORWARDED_FOR.encode("latin-1")
_PROTO_BYTES: Final = FORWARDED_PROTO.encode("latin-1")
_SCHEMES: Final = frozenset({"http", "https"})
_MAX_HOPS: Final = 32
"""A longer chain is not a real deployment's: only its last hops are read."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_network(text: str) -> Network:
    """An address or CIDR of ``trusted_proxies`` (ValueError when it is neither)."""
    return ipaddress.ip_network(text.strip(), strict=False)


def _address(hop: str) -> Address | None:
    """The address in one ``X-Forwarded-For`` entry: bare, ``[v6]:port`` or ``v4:port``."""
    hop = hop.strip()
    if hop.startswith("["):
        hop = hop[1 : hop.find("]")] if "]" in hop else hop
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        address = ipaddress.ip_address(hop)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Proxies:
    """The trusted proxies of one edge, resolved once from ``trusted_proxies``."""

    __slots__ = ("_known", "networks")

    def __init__(self, trusted: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(parse_network(t) for t in trusted)
        self._known: dict[str, bool] = {}
        """Peers already judged (a deployment has a handful of proxies), bounded."""

    @classmethod
    def of(cls, config: SessionConfig) -> Proxies | None:
        """The edge's proxies, or None when none are trusted (the default)."""
        return cls(config.trusted_proxies) if config.trusted_proxies else None

    def _trusted(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def trusts(self, peer: str | None) -> bool:
        """Is the direct peer one of the trusted proxies?"""
        if peer is None:
            return False
        known = self._known.get(peer)
        if known is None:
            address = _address(peer)
            known = address is not None and self._trusted(address)
            if len(self._known) < 1024:
                self._known[peer] = known
        return known

    def client(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address: ``peer``, unless a trusted peer forwarded the request,
        then the nearest hop of ``X-Forwarded-For`` that is not a trusted proxy (the
        farthest one when all are). A hop that is no address ends the walk there."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = forwarded_for.split(",")[-_MAX_HOPS:]
        found = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return found
            found = str(address)
            if not self._trusted(address):
                return found
        return found

    def scheme(self, peer: str | None, forwarded_proto: str | None, scheme: str) -> str:
        """The scheme the client used: the nearest ``X-Forwarded-Proto`` hop when a
        trusted peer sent one (http or https), else the connection's own ``scheme``."""
        if not forwarded_proto or not self.trusts(peer):
            return scheme
        nearest = forwarded_proto.rsplit(",", 1)[-1].strip().lower()
        return nearest if nearest in _SCHEMES else scheme

    # -- the edge's headers, in ---------------------------------------------------------------
    def from_header_list(
        self, headers: Iterable[tuple[bytes, bytes]], peer: str | None, scheme: str
    ) -> tuple[str | None, str]:
        """(client address, scheme) from an ASGI header list; repeated headers join."""
        if not self.trusts(peer):
            return peer, scheme
        forwarded_for: str | None = None
        proto: str | None = None
        for name, value in headers:
            if name == _FOR_BYTES:
                text = value.decode("latin-1")
                forwarded_for = text if forwarded_for is None else f"{forwarded_for}, {text}"
            elif name == _PROTO_BYTES:
                text = value.decode("latin-1")
                proto = text if proto is None else f"{proto}, {text}"
        return self.client(peer, forwarded_for), self.scheme(peer, proto, scheme)

    def from_environ(self, environ: Mapping[str, Any]) -> tuple[str | None, str]:
        """(client address, scheme) from a WSGI environ."""
        peer = environ.get("REMOTE_ADDR") or None
        scheme = str(environ.get("wsgi.url_scheme", "http"))
        if not self.trusts(peer):
            return peer, scheme
        return (
            self.client(peer, environ.get("HTTP_X_FORWARDED_FOR")),
            self.scheme(peer, environ.get("HTTP_X_FORWARDED_PROTO"), scheme),
        )
