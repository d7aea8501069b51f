"""collab.access.origins: the allow-list parsed from literals, then attacked."""

from __future__ import annotations

import pytest

from collab.access import OriginPolicy
from collab.errors import ConfigError

POLICY = OriginPolicy.parse(
    "https://app.example.com, http://localhost:5173/, https://*.example.org,"
    " https://Bücher.example:8443, http://[::1]:8080"
)


def allows(origin: str | None, require_origin: bool = False) -> bool:
    return POLICY.allows(origin, require_origin)


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com",
        "HTTPS://APP.EXAMPLE.COM",  # case
        "https://app.example.com:443",  # default port
        "http://localhost:5173",  # entry had a trailing slash
        "https://a.example.org",  # wildcard, one level
        "https://a.b.example.org",  # wildcard, deeper
        "https://xn--bcher-kva.example:8443",  # IDN entry, the form browsers send
        "http://[::1]:8080",
        "http://[0:0:0:0:0:0:0:1]:8080",  # same IPv6 address, long form
        " https://app.example.com ",  # header whitespace
    ],
)
def test_allowed(origin: str) -> None:
    assert allows(origin)


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://app.example.com",  # scheme differs
        "https://app.example.com:8443",  # port differs
        "https://app.example.com.attacker.net",
        "https://evil.example.org.attacker.net",
        "https://example.com.evil",
        "https://xapp.example.com",
        "https://example.org",  # wildcard excludes the apex
        "https://evilexample.org",  # suffix on a label boundary only
        "http://a.example.org",  # wildcard keeps its scheme
        "https://a.example.org:444",  # ... and its port
        "null",
        "https://app.example.com@evil.example",
        "https://evil.example@app.example.com",
        "https://user:pw@app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://app.example.com?x",
        "https://app.example.com#x",
        "https://app.example.com.",  # trailing dot: another host
        "https://app%2eexample.com",
        "https://Bücher.example:8443",  # raw Unicode is not what browsers send
        "https://app.example.com\\@evil",
        "https://app.example.com:0",
        "https://app.example.com:99999",
        "https://app..example.com",
        "app.example.com",
        "",
        "*",
    ],
)
def test_refused(origin: str) -> None:
    assert not allows(origin)


def test_missing_origin_is_allowed_unless_required() -> None:
    assert allows(None)
    assert not allows(None, require_origin=True)
    assert allows("https://app.example.com", require_origin=True)


def test_unset_setting_checks_nothing() -> None:
    for raw in ("", "   "):
        policy = OriginPolicy.parse(raw)
        assert not policy.checking
        assert policy.allows("https://evil.example", False) and policy.allows(None, False)
        assert policy.describe() == "no Origin check"


def test_star_allows_any_present_origin() -> None:
    policy = OriginPolicy.parse("*")
    assert policy.checking and policy.any_origin
    for origin in ("https://evil.example", "null", "whatever"):
        assert policy.allows(origin, True)
    assert policy.allows(None, False) and not policy.allows(None, True)


def test_describe_lists_the_normalised_entries() -> None:
    assert POLICY.describe() == (
        "http://[::1]:8080, http://localhost:5173, https://app.example.com, "
        "https://xn--bcher-kva.example:8443, https://*.example.org"
    )


def test_default_port_in_the_entry_is_normalised() -> None:
    policy = OriginPolicy.parse("https://app.example.com:443,http://x.test:80")
    assert policy.allows("https://app.example.com", False)
    assert policy.allows("http://x.test", False)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("null", "null"),
        ("app.example.com", "expected scheme://host"),
        ("https://app.example.com/path", "path"),
        ("https://app.example.com?q=1", "path, query"),
        ("https://user@app.example.com", "user info"),
        ("https://*.com", "too broad"),
        ("https://*.127.0.0.1", "too broad"),
        ("https://a.*.example.com", "'\\*'"),
        ("https://*example.com", "'\\*'"),
        ("https://app.example.com:0", "port"),
        ("https://app.example.com:70000", "port"),
        ("https://app..example.com", "host"),
        ("https://-/", "host"),
        ("https://[::g]", "host"),
        (",", "no origin"),
    ],
)
def test_malformed_entries_name_the_variable(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        OriginPolicy.parse(raw)
    assert "COLLAB_ALLOWED_ORIGINS" in str(info.value)


def test_trailing_comma_is_harmless() -> None:
    assert OriginPolicy.parse("https://a.test,").allows("https://a.test", False)
