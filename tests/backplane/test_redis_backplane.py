"""The Redis backplane against a real redis-server: every misconfiguration is
named, in the log and in health, at start-up and at every retry; a hung
server is detected; nothing raises into the caller.

The Fargate incident (DESIGN.md §2) is the reason: a TLS Redis reached without
its AUTH token failed silently and users saw 1005 closes with no error
anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from collab.backplane.redis import LINK, SUBSCRIBER, RedisBackplane
from collab.backplane.redis_options import RedisOptions
from collab.observability.health import Health
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio

PASSWORD = "default-secret"
ACL_USER, ACL_PASSWORD = "app", "app-secret"
MakeRedis = Callable[..., RedisServer]


class Events:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, event: str, n: int) -> None:
        self.counts[event] = self.counts.get(event, 0) + n


def backplane(url: str, **kw: Any) -> tuple[RedisBackplane, Health, Events]:
    health, events = Health(), Events()
    options = RedisOptions(
        url, backoff_base=0.05, backoff_cap=0.3, socket_timeout=kw.pop("socket_timeout", 2.0), **kw
    )
    return RedisBackplane(options, health=health, events=events), health, events


class Counter:
    """A resubscribed callback that counts its calls."""

    def __init__(self) -> None:
        self.n = 0

    async def bump(self) -> None:
        self.n += 1


def tls_redis(make: MakeRedis, **kw: Any) -> RedisServer:
    return make(tls=True, password=PASSWORD, users={ACL_USER: ACL_PASSWORD}, **kw)


@pytest.mark.parametrize(
    "client_certs_required", [False, True], ids=["elasticache-style", "client-certs-required"]
)
async def test_connects_with_tls_and_acl_user(
    redis_factory: MakeRedis, client_certs_required: bool
) -> None:
    server = tls_redis(redis_factory, tls_auth_clients=client_certs_required)
    bp, health, events = backplane(server.url(username=ACL_USER))
    await bp.start()
    try:
        assert bp.connected
        assert health.is_ok(LINK) and health.is_ok(SUBSCRIBER), health.report()
        got: list[bytes] = []
        await bp.subscribe("c", got.append)
        bp.publish("c", b"\x00\x01\xff")
        # The publisher counts after its pipeline returns, which may be after
        # the listener has already delivered the message.
        await wait_until(lambda: got == [b"\x00\x01\xff"] and "publish" in events.counts)
        assert events.counts["publish"] == 1 and events.counts["receive"] == 1
    finally:
        await bp.stop()


async def test_separate_settings_override_the_url(redis_factory: MakeRedis) -> None:
    """The URL carries no secret; the password and the CA come from settings."""
    server = tls_redis(redis_factory)
    assert server.certs is not None
    url = f"rediss://127.0.0.1:{server.port}/0"
    bp, health, _ = backplane(
        url, username=ACL_USER, password=ACL_PASSWORD, ssl_ca_certs=str(server.certs.ca_cert)
    )
    await bp.start()
    try:
        assert health.is_ok(LINK), health.report()
    finally:
        await bp.stop()


MISCONFIGURATIONS: dict[str, tuple[Callable[[RedisServer], str], dict[str, Any], str]] = {
    "wrong password": (
        lambda s: s.url(password="not-the-password"),
        {},
        "AUTH failed: wrong password",
    ),
    "wrong ACL password": (
        lambda s: s.url(username=ACL_USER, password="nope"),
        {},
        "AUTH failed: wrong password or ACL username",
    ),
    "no password": (
        lambda s: s.url(password=None),
        {},
        "AUTH failed: Redis requires a password and none was sent",
    ),
    "TLS without the CA": (lambda s: s.url(tls_params=False), {}, "CERTIFICATE_VERIFY_FAILED"),
    "plain connection to the TLS port": (
        lambda s: f"redis://:{PASSWORD}@127.0.0.1:{s.port}/0",
        {},
        "plain connection to a TLS port",
    ),
    "unreachable port": (
        lambda s: f"rediss://:{PASSWORD}@127.0.0.1:{free_port()}/0",
        {},
        "unreachable: connection refused",
    ),
    "client certificate missing": (
        lambda s: s.url(client_cert=False),
        {"tls_auth_clients": True},
        "TLS client certificate",
    ),
}


@pytest.mark.parametrize("case", list(MISCONFIGURATIONS))
async def test_misconfiguration_is_named_at_start_and_every_retry(
    redis_factory: MakeRedis, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    make_url, server_kw, cause = MISCONFIGURATIONS[case]
    server = tls_redis(redis_factory, **server_kw)
    url = make_url(server)
    caplog.set_level(logging.INFO, logger="collab.backplane.redis")
    bp, health, events = backplane(url)
    await bp.start()  # never raises: the server keeps serving local rooms
    try:
        assert not bp.connected
        report = health.report()
        assert not health.ready
        for name in (LINK, SUBSCRIBER):
            assert cause in report["components"][name]["error"], report
        assert "not-the-password" not in str(report) and PASSWORD not in str(report)
        await wait_until(lambda: events.counts.get("error", 0) >= 3)
        failures = [
            r for r in caplog.records if r.levelno == logging.ERROR and cause in r.getMessage()
        ]
        assert len(failures) >= 3, [r.getMessage() for r in caplog.records]
        assert "reconnect attempt 1 " in failures[0].getMessage()
        assert all(PASSWORD not in r.getMessage() for r in caplog.records)
        bp.publish("c", b"x")  # never raises; counted
        assert events.counts["dropped"] >= 1
    finally:
        await bp.stop()


async def test_hung_server_is_detected_and_recovered(redis_factory: MakeRedis) -> None:
    """SIGSTOP keeps TCP open and answers nothing: only a missing PONG tells."""
    server = tls_redis(redis_factory)
    bp, health, events = backplane(server.url(username=ACL_USER), socket_timeout=1.0)
    resubscribed = Counter()
    bp.add_resubscribed_callback(resubscribed.bump)
    await bp.start()
    try:
        await wait_until(lambda: resubscribed.n == 1)
        server.pause()
        try:
            await wait_until(lambda: not health.is_ok(SUBSCRIBER), timeout=10)
            error = health.report()["components"][SUBSCRIBER]["error"]
            assert "no answer from Redis" in error or "timed out" in error, error
            bp.publish("c", b"while hung")  # never blocks, never raises
        finally:
            server.resume()
        await wait_until(lambda: bp.connected and resubscribed.n >= 2, timeout=20)
        assert health.ready, health.report()
        assert events.counts["reconnect"] >= 1
    finally:
        await bp.stop()


async def test_publish_failure_forces_a_resync(
    redis_factory: MakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed PUBLISH may have lost a message: the link is recycled and the
    resubscribed callbacks (anti-entropy) run, even though the subscriber
    connection itself was fine. (The failure is injected: a real one cannot
    be produced on the publishing connection alone.)"""
    server = tls_redis(redis_factory)
    bp, _, events = backplane(server.url(username=ACL_USER))
    resubscribed = Counter()
    bp.add_resubscribed_callback(resubscribed.bump)
    await bp.start()
    try:
        await wait_until(lambda: resubscribed.n == 1)
        cycle = bp._cycle
        assert cycle is not None

        class BrokenPipeline:
            async def __aenter__(self) -> BrokenPipeline:
                return self

            async def __aexit__(self, *exc: object) -> None:
                return None

            def publish(self, channel: str, payload: bytes) -> None:
                return None

            async def execute(self) -> None:
                raise RedisConnectionError("simulated publish failure")

        cycle.client.pipeline = lambda transaction=True: BrokenPipeline()  # type: ignore[method-assign,misc,assignment]
        bp.publish("c", b"x")
        await wait_until(lambda: resubscribed.n >= 2)
        assert events.counts["error"] >= 1
        assert any("simulated publish failure" in r.getMessage() for r in caplog.records)
    finally:
        await bp.stop()
