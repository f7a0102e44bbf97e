"""Small pure pieces: tokens, cookies, client info, configuration, the Session mapping."""

from __future__ import annotations

import hashlib

import pytest

from coatcheck import ConfigError, SessionCommittedError, SessionConfig, SessionDataError
from coatcheck.core import tokens
from coatcheck.core.client import ClientInfo, truncate_ip
from coatcheck.core.session import Session
from coatcheck.http.cookies import clear_cookie, read_cookie, set_cookie


def test_tokens_are_unique_well_formed_and_hashed() -> None:
    minted = {tokens.new_token() for _ in range(1000)}
    assert len(minted) == 1000
    for t in list(minted)[:50]:
        assert tokens.is_well_formed(t)
        assert tokens.storage_key(t) == hashlib.sha256(t.encode()).hexdigest()
    assert not tokens.is_well_formed("a" * 42)
    assert not tokens.is_well_formed("a" * 44)
    assert not tokens.is_well_formed("a" * 42 + "=")
    assert not tokens.is_well_formed("a" * 42 + "é")
    assert tokens.constant_time_equal("abc", b"abc")
    assert not tokens.constant_time_equal("abc", "abd")


def test_handles_are_not_tokens() -> None:
    handle = tokens.new_handle()
    assert not tokens.is_well_formed(handle)
    assert len(handle) == 16


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:abcd:1234:5678:9abc:def0:1234", "2001:db8:abcd::"),
        ("::ffff:198.51.100.9", "198.51.100.0"),
        ("not an ip", None),
        ("", None),
        (None, None),
    ],
)
def test_ip_truncation(address: str | None, expected: str | None) -> None:
    assert truncate_ip(address) == expected


def test_client_info_keeps_a_reduced_user_agent_and_a_truncated_ip() -> None:
    # A user agent names nothing known: every part of the coarse reduction is "Other".
    info = ClientInfo.from_raw("x" * 10_000, "10.1.2.3")
    assert info.user_agent == "Other / Other / other"
    assert info.ip == "10.1.2.0"


def test_read_cookie() -> None:
    assert read_cookie("a=1; __Host-session=tok; b=2", "__Host-session") == "tok"
    assert read_cookie('__Host-session="tok"', "__Host-session") == "tok"
    assert read_cookie("x__Host-session=tok", "__Host-session") is None
    assert read_cookie("__Host-session=first; __Host-session=second", "__Host-session") == "first"
    assert read_cookie("", "__Host-session") is None


def test_set_and_clear_cookie() -> None:
    config = SessionConfig()
    assert set_cookie(config, "T") == "__Host-session=T; Path=/; Secure; HttpOnly; SameSite=Lax"
    assert set_cookie(config, "T", 60).endswith("; Max-Age=60")
    cleared = clear_cookie(config)
    assert "Max-Age=0" in cleared
    assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in cleared


def test_weaker_cookies_need_a_matching_name() -> None:
    with pytest.raises(ConfigError, match="__Host-"):
        SessionConfig(secure=False)
    with pytest.raises(ConfigError, match="__Host-"):
        SessionConfig(domain="example.com")
    with pytest.raises(ConfigError, match="secure"):
        SessionConfig(cookie_name="__Secure-s", secure=False)
    with pytest.raises(ConfigError, match="same_site"):
        SessionConfig(cookie_name="s", secure=False, same_site="none")
    relaxed = SessionConfig(cookie_name="dev-session", secure=False)
    assert "Secure" not in set_cookie(relaxed, "T")


@pytest.mark.parametrize(
    "changes",
    [
        {"idle_timeout": 0},
        {"absolute_timeout": -1},
        {"touch_interval": 10_000},
        {"same_site": "sometimes"},
        {"cookie_name": "a;b"},
        {"purge_batch_size": 0},
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SessionConfig(**changes)  # type: ignore[arg-type]


def test_from_env_reads_typed_values_and_names_bad_ones() -> None:
    config = SessionConfig.from_env(
        {
            "COATCHECK_IDLE_TIMEOUT": "900",
            "COATCHECK_TOUCH_INTERVAL": "none",
            "COATCHECK_ALLOW_BEARER": "false",
            "COATCHECK_SAME_SITE": "strict",
            "COATCHECK_PURGE_BATCH_SIZE": "50",
            "UNRELATED": "x",
        }
    )
    assert config.idle_timeout == 900.0
    assert config.effective_touch_interval == 90.0
    assert config.allow_bearer is False
    assert config.same_site == "strict"
    assert config.purge_batch_size == 50
    with pytest.raises(ConfigError, match="COATCHECK_IDLE_TIMEOUT"):
        SessionConfig.from_env({"COATCHECK_IDLE_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="COATCHECK_SECURE"):
        SessionConfig.from_env({"COATCHECK_SECURE": "maybe"})


def test_session_tracks_changes_and_refuses_non_str_keys() -> None:
    s = Session(None, now=0.0)
    assert not s.modified
    s["a"] = 1
    assert s.modified
    with pytest.raises(SessionDataError):
        s[1] = "x"  # type: ignore[index]
    assert dict(s) == {"a": 1}
    assert "a" in s
    assert len(s) == 1


def test_session_refuses_changes_after_commit() -> None:
    s = Session(None, now=0.0)
    s.close()
    with pytest.raises(SessionCommittedError):
        s["a"] = 1
    with pytest.raises(SessionCommittedError):
        s.login("alice")


def test_a_lone_surrogate_is_a_data_error_naming_the_key() -> None:
    from coatcheck.core.record import encode_value

    with pytest.raises(SessionDataError, match="'name'"):
        encode_value("name", "broken \ud800 text")
    assert encode_value("name", "Zoë") == '"Zoë"'
