"""The connection gates as pure objects: scopes in, refusals out."""

from __future__ import annotations

from typing import Any

import pytest

from collab.errors import ConfigError
from collab.transport.limits import ClientKey, ConnectionLimit, ConnectRate


def scope(peer: str = "203.0.113.9", xff: str | None = None) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", xff.encode())] if xff is not None else []
    return {"type": "websocket", "client": (peer, 50000), "headers": headers}


def test_without_trusted_proxies_the_peer_is_the_key_whatever_the_header_says() -> None:
    key = ClientKey.parse("")
    assert key.of(scope(xff="198.51.100.1")) == "203.0.113.9"


def test_a_hop_count_reads_the_address_the_farthest_trusted_proxy_saw() -> None:
    one = ClientKey.parse("1")  # behind one ALB: it appends the address it saw
    assert one.of(scope("10.0.0.2", "198.51.100.1")) == "198.51.100.1"
    # A client that sends its own header only adds entries left of the real one.
    assert one.of(scope("10.0.0.2", "1.2.3.4, 5.6.7.8, 198.51.100.1")) == "198.51.100.1"
    assert (
        ClientKey.parse("2").of(scope("10.0.0.2", "9.9.9.9, 198.51.100.1, 10.0.0.3"))
        == "198.51.100.1"
    )
    assert one.of(scope("10.0.0.2")) == "10.0.0.2"  # no header: the peer


def test_cidrs_skip_trusted_addresses_from_the_right() -> None:
    key = ClientKey.parse("10.0.0.0/8, fd00::/8")
    assert key.of(scope("10.0.0.2", "7.7.7.7, 198.51.100.1, 10.1.1.1")) == "198.51.100.1"
    # A peer that is not a trusted proxy: its header counts for nothing.
    assert key.of(scope("203.0.113.9", "198.51.100.1")) == "203.0.113.9"


def test_ipv6_clients_share_a_bucket_per_64() -> None:
    key = ClientKey.parse("")
    assert key.of(scope("2001:db8::1")) == key.of(scope("2001:db8::ffff")) == "2001:db8::/64"
    assert key.of(scope("::ffff:192.0.2.1")) == "192.0.2.1"


def test_a_bad_proxy_entry_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="COLLAB_TRUSTED_PROXIES"):
        ClientKey.parse("10.0.0.0/8, nonsense")


def test_connect_rate_is_a_token_bucket_with_retry_after() -> None:
    now = [0.0]
    gate = ConnectRate(60, 3, ClientKey(), clock=lambda: now[0])  # 1 per second, burst 3
    assert [gate.admit(scope()) for _ in range(3)] == [None] * 3
    refusal = gate.admit(scope())
    assert refusal is not None and refusal.status == 429 and refusal.label == "connect_rate"
    assert dict(refusal.headers)["Retry-After"] == "1"
    assert gate.admit(scope("198.51.100.7")) is None  # another client is not throttled
    now[0] += 1.0
    assert gate.admit(scope()) is None


def test_the_rate_table_is_bounded_however_many_addresses() -> None:
    gate = ConnectRate(60, 1, ClientKey(), max_clients=100)
    for i in range(5000):
        gate.admit(scope(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"))
    assert len(gate) == 100


def test_connection_limit_is_503() -> None:
    open_now = [2]
    gate = ConnectionLimit(2, lambda: open_now[0])
    refusal = gate.admit(scope())
    assert refusal is not None and (refusal.status, refusal.label) == (503, "max_connections")
    open_now[0] = 1
    assert gate.admit(scope()) is None
