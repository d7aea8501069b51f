"""tests/support/redis_server.py against Debian's real redis-server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.redis_server import RedisServer, RedisServerError, redis_server

RedisFactory = Callable[..., RedisServer]


def test_plain_server_answers_and_url_round_trips(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    assert server.url() == f"redis://127.0.0.1:{server.port}/0"
    client = redis.Redis.from_url(server.url())
    assert client.ping() is True
    client.set("k", "v")
    assert server.client().get("k") == b"v"
    client.close()


@pytest.mark.parametrize(
    "tls_auth_clients", [False, True], ids=["no-client-cert", "client-cert-required"]
)
def test_tls_with_password_and_acl_user(
    redis_factory: RedisFactory, tls_auth_clients: bool
) -> None:
    server = redis_factory(
        tls=True,
        password="tok3n/with:odd@chars",
        users={"app": "app-pw"},
        tls_auth_clients=tls_auth_clients,
    )
    assert server.url().startswith("rediss://")

    # Default user (the ElastiCache AUTH token) and the ACL user, via URL and kwargs.
    for url in (server.url(), server.url(username="app")):
        client = redis.Redis.from_url(url, socket_timeout=5)
        assert client.ping() is True
        client.close()
    assert server.client(username="app").acl_whoami() == "app"
    assert server.client().acl_whoami() == "default"

    # No client certificate: fine for ElastiCache-style, refused otherwise.
    no_cert = server.client(client_cert=False)
    if tls_auth_clients:
        with pytest.raises(redis.ConnectionError):
            no_cert.ping()
    else:
        assert no_cert.ping() is True


def test_wrong_or_missing_password_is_authentication_error(redis_factory: RedisFactory) -> None:
    server = redis_factory(tls=True, password="right", users={"app": "app-pw"})
    with pytest.raises(redis.AuthenticationError):
        server.client(password="wrong").ping()
    with pytest.raises(redis.AuthenticationError):
        server.client(username="app", password="wrong").ping()
    with pytest.raises(redis.AuthenticationError):
        server.client(password=None).ping()  # NOAUTH


def test_tls_misconfigurations_fail_as_documented(redis_factory: RedisFactory) -> None:
    server = redis_factory(tls=True, password="pw")
    # Plain connection to the TLS port: reset / closed.
    no_retry = Retry(NoBackoff(), 0)
    plain = redis.Redis(
        host="127.0.0.1", port=server.port, password="pw", socket_timeout=5, retry=no_retry
    )
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    # TLS without our CA: certificate verification fails.
    no_ca = redis.Redis(
        host="127.0.0.1",
        port=server.port,
        password="pw",
        ssl=True,
        socket_timeout=5,
        retry=no_retry,
    )
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        no_ca.ping()


def test_sigkill_then_restart_on_the_same_port(redis_factory: RedisFactory) -> None:
    server = redis_factory(tls=True, password="pw")
    port = server.port
    pid = server.pid
    client = server.client()
    client.set("k", "v")

    server.kill()
    assert not server.running
    with pytest.raises(redis.ConnectionError):
        client.ping()

    server.restart()
    assert server.port == port and server.pid != pid
    # Same address and credentials; nothing persisted (save "", appendonly no).
    assert client.ping() is True
    assert client.get("k") is None


def test_pause_and_resume(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="pw")
    server.pause()
    with pytest.raises(redis.TimeoutError):
        server.client(socket_timeout=0.3, socket_connect_timeout=0.3).ping()
    server.resume()
    assert server.client().ping() is True
    # stop() works on a paused server too.
    server.pause()
    server.stop()
    assert not server.running


@pytest.mark.anyio
async def test_async_client_and_async_restart(redis_factory: RedisFactory) -> None:
    server = redis_factory(tls=True, password="pw", users={"app": "app-pw"}, tls_auth_clients=True)
    url = server.url(username="app")
    client = redis.asyncio.Redis.from_url(url)
    try:
        assert await client.ping() is True
        await server.akill()
        await server.arestart()
    finally:
        await client.aclose()
    assert server.url(username="app") == url
    client = server.async_client(username="app")
    try:
        assert await client.acl_whoami() == "app"
    finally:
        await client.aclose()


def test_context_manager_and_start_failure_is_loud(tmp_path: Path) -> None:
    with redis_server(tmp_path / "ok") as server:
        assert server.client().ping() is True
    assert not server.running

    broken = RedisServer(tmp_path / "broken", extra_config=["no-such-directive yes"])
    with pytest.raises(RedisServerError, match="exited with code") as info:
        broken.start(timeout=10)
    assert "no-such-directive" in str(info.value)  # the log is in the message


def test_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("COLLAB_TEST_REDIS_SERVER", raising=False)
    with pytest.raises(RedisServerError, match=r"install-test-deps\.sh"):
        RedisServer(tmp_path / "r")
