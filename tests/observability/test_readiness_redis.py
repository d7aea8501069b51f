"""Readiness follows the real Redis: 503 with the cause when it is stopped,
given a wrong password, or reached over TLS without the CA; 200 again once
the fault is fixed, without restarting collab.

The Fargate incident (DESIGN.md §2): a TLS Redis reached without its AUTH
token, and nothing but 1005 closes to show for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.certs import make_certs
from tests.support.redis_server import RedisServer
from tests.support.servers import CollabProcess, run_collab

from .common import eventually, get_json, scrape, value

# No redis-server is a failure (RedisServer says how to install it), never a skip.
pytestmark = pytest.mark.anyio

PASSWORD = "right-pa55word"
WRONG = "wrong-pa55word"


def collab_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "COLLAB_STORE_URL": "memory://",
        "COLLAB_REDIS_URL": redis_url,
        "COLLAB_REDIS_BACKOFF_BASE": "0.05",
        "COLLAB_REDIS_BACKOFF_CAP": "0.5",
        "COLLAB_REDIS_SOCKET_TIMEOUT": "2",
        "COLLAB_LOG_FORMAT": "json",
        **extra,
    }


async def readyz(srv: CollabProcess) -> tuple[int, Any]:
    return await get_json(srv.url + "/readyz")


async def until(srv: CollabProcess, status: int, timeout: float = 20) -> Mapping[str, Any]:
    _, body = await eventually(lambda: readyz(srv), lambda r: r[0] == status, timeout)
    return body  # type: ignore[no-any-return]


def assert_only_redis_failing(body: Mapping[str, Any], *secrets: str) -> str:
    """The report blames Redis (link and subscriber), not the rest; no secret in it."""
    assert body["status"] == "failing"
    components = body["components"]
    assert components["store"]["status"] == "ok" and components["event_loop"]["status"] == "ok"
    link = components["redis"]
    assert link["status"] == "failing" and link["error"] and link["since"]
    assert components["redis_subscriber"]["status"] == "failing"
    for secret in secrets:
        assert secret not in str(body)
    return str(link["error"])


async def test_redis_stopped_then_back(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis", password=PASSWORD) as redis_srv:
        async with run_collab(tmp_path, collab_env(redis_srv.url())) as srv:
            body = await until(srv, 200)
            assert body["components"]["redis"]["status"] == "ok"
            assert body["components"]["redis_subscriber"]["status"] == "ok"

            await redis_srv.astop()
            error = assert_only_redis_failing(await until(srv, 503), PASSWORD)
            assert f"127.0.0.1:{redis_srv.port}" in error

            await redis_srv.arestart()  # same port: nothing restarted on our side
            body = await until(srv, 200)
            assert body["components"]["redis"]["last_error"]  # the outage stays explained
            samples = await scrape(srv.url)
            assert value(samples, "collab_backplane_events_total", event="error") >= 1
            assert value(samples, "collab_backplane_events_total", event="reconnect") >= 1
            assert PASSWORD not in srv.log_text()


async def test_wrong_password_then_fixed(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis", password=PASSWORD) as redis_srv:
        url = redis_srv.url(password=WRONG)
        async with run_collab(tmp_path, collab_env(url)) as srv:
            error = assert_only_redis_failing(await until(srv, 503), PASSWORD, WRONG)
            assert "AUTH" in error and "password" in error.lower()
            # Rotate the server's AUTH token to the one collab has: fixed live.
            admin = redis_srv.client()
            try:
                admin.config_set("requirepass", WRONG)
            finally:
                admin.close()
            body = await until(srv, 200)
            assert "AUTH" in body["components"]["redis"]["last_error"]
            assert WRONG not in srv.log_text() and PASSWORD not in srv.log_text()


async def test_tls_without_the_ca_then_trusted(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "pki")
    trust = tmp_path / "trust-store.pem"  # the process's default CA file, empty at first
    with RedisServer(tmp_path / "redis", tls=True, certs=certs, password=PASSWORD) as redis_srv:
        url = redis_srv.url(tls_params=False)  # rediss:// without ssl_ca_certs
        assert url.startswith("rediss://") and "ssl_ca_certs" not in url
        env = collab_env(url, SSL_CERT_FILE=str(trust), SSL_CERT_DIR=str(tmp_path / "no-dir"))
        async with run_collab(tmp_path, env) as srv:
            error = assert_only_redis_failing(await until(srv, 503), PASSWORD)
            assert "CERTIFICATE_VERIFY_FAILED" in error
            # An operator installs the CA in the trust store; collab picks it
            # up on its next reconnect.
            trust.write_bytes(certs.ca_cert.read_bytes())
            body = await until(srv, 200)
            assert "CERTIFICATE_VERIFY_FAILED" in body["components"]["redis"]["last_error"]
