"""The unknown-token throttle counts only what it must: a token that opens nothing (unknown or
malformed), once per token, per client address. A valid token is never throttled, whatever
its address did, and an expired session is a real user's, not a probe.

The address is the direct peer's unless ``trusted_proxies`` names that peer, in which case
``X-Forwarded-For`` decides (``coatcheck.http.forwarded``; over a real nginx in
tests/test_reverse_proxy.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from coatcheck import ClientInfo, ConfigError, SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.errors import Throttled
from coatcheck.http.forwarded import Proxies
from coatcheck.security.throttle import UnknownTokenThrottle
from coatcheck.stores import MemoryStore
from tests.support.clock import FakeClock

PROXY = "10.0.0.7"
"""Every client below comes through this one address (a proxy, a NAT, an office)."""


class CountingThrottle(UnknownTokenThrottle):
    """The real throttle, counting how often the manager consults it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls = 0

    def retry_after(self, client: str, now: float) -> int | None:
        self.calls += 1
        return super().retry_after(client, now)

    def miss(self, client: str, now: float, token: str | None = None) -> None:
        self.calls += 1
        super().miss(client, now, token)


def manager_for(clock: FakeClock, limit: int = 3, **config: Any) -> SessionManager:
    settings = SessionConfig(unknown_token_limit=limit, unknown_token_window=60, **config)
    return SessionManager(MemoryStore(), settings, clock=clock)


def via_proxy(agent: str = "browser") -> ClientInfo:
    return ClientInfo.from_raw(agent, PROXY)


async def logged_in(manager: SessionManager, user: str) -> str:
    session = await manager.load(None, via_proxy())
    session.login(user)
    token = (await manager.commit(session)).token
    assert token is not None
    return token


async def test_a_valid_token_is_never_throttled(clock: FakeClock) -> None:
    manager = manager_for(clock)
    alice = await logged_in(manager, "alice")
    for _ in range(3):
        assert (await manager.load(tokens.new_token(), via_proxy("prober"))).is_new
    with pytest.raises(Throttled):
        await manager.load(tokens.new_token(), via_proxy("prober"))
    with pytest.raises(Throttled):
        manager.load_sync("not a token", via_proxy("prober"))
    # The proxy's address is over the limit; alice's valid token still opens her session.
    assert (await manager.load(alice, via_proxy())).user_id == "alice"
    assert manager.load_sync(alice, via_proxy()).user_id == "alice"
    assert (await manager.load(None, via_proxy())).is_new  # no token: an ordinary visitor


async def test_the_same_unknown_token_counts_once(clock: FakeClock) -> None:
    """A browser that keeps sending one dead cookie (before it learns it is dead) is one
    miss, not one per request; every distinct guess counts."""
    manager = manager_for(clock)
    stale = tokens.new_token()
    for _ in range(10):
        assert (await manager.load(stale, via_proxy())).is_new
    assert (await manager.load(tokens.new_token(), via_proxy())).is_new  # the 2nd miss
    assert (await manager.load("garbage", via_proxy())).is_new  # the 3rd
    with pytest.raises(Throttled):
        await manager.load(tokens.new_token(), via_proxy())


async def test_an_expired_session_is_not_a_miss(clock: FakeClock) -> None:
    manager = manager_for(clock, limit=1, idle_timeout=600)
    expired = [await logged_in(manager, f"user{i}") for i in range(3)]
    clock.advance(601)
    for token in expired:  # three real users whose sessions ran out, behind one proxy
        session = await manager.load(token, via_proxy())
        assert session.is_new
    assert (await manager.load(tokens.new_token(), via_proxy())).is_new  # the one miss
    with pytest.raises(Throttled):
        await manager.load(tokens.new_token(), via_proxy())


async def test_the_valid_path_does_no_throttle_work(clock: FakeClock) -> None:
    manager = manager_for(clock)
    spy = CountingThrottle(3, 60)
    manager._throttle = spy
    alice = await logged_in(manager, "alice")
    for _ in range(5):
        assert (await manager.load(alice, via_proxy())).user_id == "alice"
        assert manager.load_sync(alice, via_proxy()).user_id == "alice"
        assert manager.load_sync(None, via_proxy()).is_new
    assert spy.calls == 0
    await manager.load(tokens.new_token(), via_proxy())
    assert spy.calls == 2  # an unknown token: asked, then counted


def test_the_throttle_table_stays_bounded() -> None:
    throttle = UnknownTokenThrottle(limit=2, window=60, max_clients=3)
    for i in range(10):
        throttle.miss(f"192.0.2.{i}", 0.0, tokens.new_token())
    assert len(throttle._counts) == 3


# -- the client address: the peer, or X-Forwarded-For past trusted proxies -------------------
@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # an untrusted peer: its own address
        ("10.0.0.7", None, "10.0.0.7"),  # a trusted peer that forwarded nothing
        ("10.0.0.7", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.7", "1.1.1.1, 198.51.100.1", "198.51.100.1"),  # the client forged 1.1.1.1
        ("10.0.0.7", "198.51.100.1, 10.0.0.8", "198.51.100.1"),  # two trusted proxies
        ("10.0.0.7", "10.0.0.9, 10.0.0.8", "10.0.0.9"),  # all trusted: the farthest
        ("10.0.0.7", "198.51.100.1:4711", "198.51.100.1"),  # a port some proxies add
        ("10.0.0.7", "[2001:db8::5]:443", "2001:db8::5"),
        ("10.0.0.7", " 2001:db8::5 ", "2001:db8::5"),
        ("::ffff:10.0.0.7", "198.51.100.1", "198.51.100.1"),  # an IPv4-mapped peer
        ("192.168.1.5", "198.51.100.1", "198.51.100.1"),  # a trusted single address
        (None, "198.51.100.1", None),  # a Unix socket: no peer address, nothing to trust
    ],
)
def test_the_client_address_past_trusted_proxies(
    peer: str | None, forwarded_for: str | None, expected: str | None
) -> None:
    proxies = Proxies(("10.0.0.0/8", "192.168.1.5"))
    assert proxies.client(peer, forwarded_for) == expected


def test_the_scheme_comes_from_a_trusted_proxy_only() -> None:
    proxies = Proxies(("127.0.0.1",))
    assert proxies.scheme("127.0.0.1", "https", "http") == "https"
    assert proxies.scheme("127.0.0.1", "http, https", "http") == "https"  # the nearest hop
    assert proxies.scheme("127.0.0.1", "gopher", "http") == "http"
    assert proxies.scheme("198.51.100.1", "https", "http") == "http"


def test_trusted_proxies_is_validated_and_read_from_the_environment() -> None:
    config = SessionConfig(trusted_proxies=["127.0.0.1", "10.0.0.0/8", "::1"])
    assert config.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1")
    env = SessionConfig.from_env({"COATCHECK_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    assert env.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    with pytest.raises(ConfigError, match="trusted_proxies: 'nginx'"):
        SessionConfig(trusted_proxies=["nginx"])
    assert Proxies.of(SessionConfig()) is None  # none configured: the edges skip it all
