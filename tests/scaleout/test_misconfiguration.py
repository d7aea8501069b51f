"""A misconfigured Redis is named, in the log and in /readyz, by a real
``collab serve``, and local rooms keep working meanwhile: never a silent
1005 (the Fargate incident, DESIGN.md §2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.servers import run_collab

from .helpers import BASE_ENV, js_client, until_ready

pytestmark = pytest.mark.anyio

AUTH_TOKEN = "right-auth-token"

CASES: dict[str, tuple[Callable[[RedisServer], str], str]] = {
    "wrong password": (lambda s: s.url(password="wrong-auth-token"), "AUTH failed"),
    "TLS without the CA": (lambda s: s.url(tls_params=False), "CERTIFICATE_VERIFY_FAILED"),
    "plain connection to the TLS port": (
        lambda s: f"redis://:{AUTH_TOKEN}@127.0.0.1:{s.port}/0",
        "plain connection to a TLS port",
    ),
    "unreachable": (
        lambda s: f"rediss://:{AUTH_TOKEN}@127.0.0.1:{free_port()}/0",
        "unreachable: connection refused",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_misconfiguration_is_named_and_local_rooms_keep_working(
    tmp_path: Path, redis_factory, case: str
) -> None:
    make_url, cause = CASES[case]
    server = redis_factory(tls=True, password=AUTH_TOKEN)
    env = {
        **BASE_ENV,
        "COLLAB_STORE_URL": "memory://",
        "COLLAB_REDIS_URL": make_url(server),
        # An empty trust store: "without the CA" must not be rescued by the system's.
        "SSL_CERT_FILE": str(tmp_path / "empty.pem"),
        "SSL_CERT_DIR": str(tmp_path),
    }
    (tmp_path / "empty.pem").write_text("")
    async with run_collab(tmp_path, env) as srv, js_client(tmp_path) as js:
        body = await until_ready(srv, 503)
        link = body["components"]["redis"]
        assert cause in link["error"], body
        assert AUTH_TOKEN not in str(body) and "wrong-auth-token" not in str(body)
        await srv.wait_for_log(cause)
        assert "reconnect attempt" in srv.log_text()

        # The room still serves this instance's clients.
        await js.call("connect", handle="a", url=srv.ws_url, room="local")
        await js.call("connect", handle="b", url=srv.ws_url, room="local")
        await js.call("insert", handle="a", text="still editing")
        await js.call("wait_text", handle="b", equals="still editing", timeout_ms=10_000)
        # Through several failed reconnects, nobody was dropped (the incident's
        # symptom: sockets closing with 1005 while Redis failed quietly).
        await srv.wait_for_log("reconnect attempt 3 ")
        await js.call("insert", handle="b", text="!")
        await js.call("wait_text", handle="a", equals="still editing!", timeout_ms=10_000)
        assert js.events_for("a", "close") == [] and js.events_for("b", "close") == []
        assert AUTH_TOKEN not in srv.log_text()
