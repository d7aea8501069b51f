"""docker-compose.yml, deploy/compose/nginx.conf and scripts/make-certs.sh:
valid for docker-compose 1.29 (and nginx), wired to each other and to the
Dockerfile, and the dev certificates really work for TLS to host "redis"."""

from __future__ import annotations

import re
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from collab.access import OriginPolicy, TokenVerifier
from collab.config import Settings

from ..support.tokens import mint
from .artifacts import (
    COMPOSE_FILE,
    MAKE_CERTS,
    NGINX_CONF,
    REPO,
    compose,
    compose_env,
    duration_seconds,
    image,
    option,
    require_tool,
    run_tool,
)

COLLAB_SERVICES = ("collab-1", "collab-2")


def _service(name: str) -> dict[str, Any]:
    return dict(compose()["services"][name])


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path (relative to the repo) of bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        out[target] = source
    return out


def test_docker_compose_1_29_config_is_valid() -> None:
    # Debian's docker-compose 1.29 validates against the Compose Specification
    # schema it ships; `config` also resolves anchors and interpolation.
    docker_compose = require_tool("docker-compose")
    result = run_tool([docker_compose, "-f", str(COMPOSE_FILE), "config", "--quiet"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_obsolete_version_key() -> None:
    # Compose v2 warns that `version` is obsolete; 1.27+ does not need it.
    assert "version" not in compose()


@pytest.mark.parametrize("name", COLLAB_SERVICES)
def test_collab_service_runs_the_image_command(name: str) -> None:
    service = _service(name)
    assert service["build"]["context"] == "."
    assert service["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    argv = list(service.get("entrypoint", [])) + list(service["command"])
    assert argv == image().argv


@pytest.mark.parametrize("name", COLLAB_SERVICES)
def test_collab_service_uses_tls_redis_with_password_and_postgres(name: str) -> None:
    service = _service(name)
    env = compose_env(service)
    redis = _service("redis")
    redis_argv = [str(a) for a in redis["command"]]

    redis_port = option(redis_argv, "--tls-port")
    assert option(redis_argv, "--port") == "0", "Redis must not listen without TLS"
    assert env["COLLAB_REDIS_URL"] == f"rediss://redis:{redis_port}/0"
    assert env["COLLAB_REDIS_PASSWORD"] == option(redis_argv, "--requirepass")
    assert env["COLLAB_REDIS_PASSWORD"], "empty Redis password"
    # ElastiCache does not ask for client certificates; neither does this Redis.
    assert option(redis_argv, "--tls-auth-clients") == "no"

    ca = env["COLLAB_REDIS_SSL_CA_CERTS"]
    mounts = _mounts(service)
    assert ca in mounts, f"{ca} is not mounted into {name}"
    redis_mounts = _mounts(redis)
    certs_in_redis = redis_mounts["/certs"]
    assert mounts[ca] == f"{certs_in_redis}/ca.crt"
    assert option(redis_argv, "--tls-ca-cert-file") == "/certs/ca.crt"
    assert option(redis_argv, "--tls-cert-file") == "/certs/redis.crt"
    assert option(redis_argv, "--tls-key-file") == "/certs/redis.key"
    assert certs_in_redis == "./deploy/compose/certs"

    pg = compose_env(_service("postgres"))
    expected = (
        f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{pg['POSTGRES_DB']}"
    )
    assert env["COLLAB_STORE_URL"] == expected
    assert env["COLLAB_LOG_FORMAT"] == "json"

    for dependency in ("redis", "postgres"):
        assert service["depends_on"][dependency]["condition"] == "service_healthy"
        assert "healthcheck" in _service(dependency)


@pytest.mark.parametrize("name", COLLAB_SERVICES)
def test_stop_grace_period_outlasts_the_drain(name: str) -> None:
    service = _service(name)
    drain = float(compose_env(service)["COLLAB_DRAIN_SECONDS"])
    assert duration_seconds(service["stop_grace_period"]) > drain
    # An init process forwards SIGTERM and reaps; collab stays a child of it.
    assert service.get("init") is True


@pytest.mark.parametrize("name", COLLAB_SERVICES)
def test_collab_service_is_authenticated_as_shipped(name: str) -> None:
    env = compose_env(_service(name))
    settings = Settings.from_env(env)  # the dev secret passes collab's own checks
    verifier = TokenVerifier.from_settings(settings)
    assert verifier is not None and verifier.algorithms == ("HS256",)
    # A token minted with the dev secret works on every instance alike.
    for other in COLLAB_SERVICES:
        assert compose_env(_service(other))["COLLAB_JWT_SECRET"] == settings.jwt_secret
    token = mint(settings.jwt_secret, rooms=["compose-demo"])
    assert verifier.authorize(token, "compose-demo").allows("compose-demo")
    policy = OriginPolicy.parse(settings.allowed_origins)
    assert policy.checking and not policy.any_origin
    assert policy.allows("http://localhost:5173", settings.require_origin)
    assert not policy.allows("https://evil.example", settings.require_origin)
    # Non-browser clients (bots, the Python demo) send no Origin.
    assert policy.allows(None, settings.require_origin)
    # The README tells developers this very secret.
    assert settings.jwt_secret in (REPO / "README.md").read_text(encoding="utf-8")


def _log_formats() -> dict[str, str]:
    text = NGINX_CONF.read_text()
    return {m[1]: m[2] for m in re.finditer(r"^\s*log_format\s+(\w+)\s+(.*?);", text, re.M | re.S)}


def test_nginx_logs_no_query_string() -> None:
    formats = _log_formats()
    assert formats, "no log_format: nginx's default one logs $request, query included"
    for fmt in formats.values():
        variables = set(re.findall(r"\$(\w+)", fmt))
        assert "uri" in variables
        leaky = {
            "request",
            "request_uri",
            "args",
            "query_string",
            "is_args",
            "http_referer",
            "request_body",
            "http_sec_websocket_protocol",
            "http_cookie",
        }
        assert not variables & leaky, variables & leaky
        assert not any(v.startswith("arg_") for v in variables)
    logs = _nginx_directives("access_log")
    assert logs and all(len(d.split()) >= 2 and d.split()[1] in formats for d in logs), logs
    # Error lines quote the request line verbatim: only crit and above.
    (error_log,) = _nginx_directives("error_log")
    assert error_log.split()[-1] in ("crit", "alert", "emerg")


def _nginx_directives(name: str) -> list[str]:
    return re.findall(rf"^\s*{re.escape(name)}\s+([^;{{}}\n]+);", NGINX_CONF.read_text(), re.M)


def test_nginx_is_the_only_published_port_on_loopback_8080() -> None:
    published = {name: svc.get("ports", []) for name, svc in compose()["services"].items()}
    assert published.pop("nginx") == ["127.0.0.1:8080:8080"]
    assert all(not ports for ports in published.values()), published
    assert _nginx_directives("listen") == ["8080"]
    assert _mounts(_service("nginx"))["/etc/nginx/nginx.conf"] == "./deploy/compose/nginx.conf"


def test_nginx_upstreams_are_the_collab_services() -> None:
    port = option(image().argv, "--port")
    servers = [d.split()[0] for d in _nginx_directives("server")]
    assert sorted(servers) == sorted(f"{name}:{port}" for name in COLLAB_SERVICES)
    assert "collab-1" in _service("nginx")["depends_on"]


def test_nginx_proxies_websockets() -> None:
    text = NGINX_CONF.read_text()
    assert _nginx_directives("proxy_http_version") == ["1.1"]
    headers = {d.split()[0]: d.split()[1] for d in _nginx_directives("proxy_set_header")}
    assert headers["Upgrade"] == "$http_upgrade"
    assert headers["Connection"] == "$connection_upgrade"
    assert re.search(
        r"map\s+\$http_upgrade\s+\$connection_upgrade\s*{[^}]*default\s+upgrade;", text
    )
    # Idle sockets carry only the server's pings: the read timeout must be
    # well above the ping interval or nginx cuts quiet documents.
    ping = float(compose_env(_service("collab-1"))["COLLAB_PING_INTERVAL"])
    (read_timeout,) = _nginx_directives("proxy_read_timeout")
    assert duration_seconds(read_timeout) > 2 * ping


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    # Compose service names do not resolve here: point them at loopback.
    nginx = require_tool("nginx")
    conf = tmp_path / "nginx.conf"
    conf.write_text(re.sub(r"\bcollab-\d+:", "127.0.0.1:", NGINX_CONF.read_text()))
    result = run_tool(
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-e",
            "stderr",
            "-c",
            str(conf),
            "-g",
            f"pid {tmp_path}/nginx.pid;",
        ]
    )
    assert result.returncode == 0, result.stderr


# -- scripts/make-certs.sh --------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("openssl")
    out = tmp_path_factory.mktemp("certs")
    result = run_tool(["bash", str(MAKE_CERTS), str(out)])
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_make_certs_writes_what_compose_mounts(certs: Path) -> None:
    for name in ("ca.crt", "redis.crt", "redis.key", "client.crt", "client.key"):
        assert (certs / name).stat().st_size > 0, name
    # Read through a bind mount by uid 999 (redis) and 10001 (collab).
    for name in ("ca.crt", "redis.crt", "redis.key"):
        assert (certs / name).stat().st_mode & stat.S_IROTH, f"{name} is not world-readable"
    assert not (certs / "ca.key").stat().st_mode & stat.S_IROTH


def test_make_certs_is_idempotent(certs: Path) -> None:
    before = (certs / "ca.crt").read_bytes()
    result = run_tool(["bash", str(MAKE_CERTS), str(certs)])
    assert result.returncode == 0, result.stderr
    assert (certs / "ca.crt").read_bytes() == before


@pytest.mark.parametrize("client_cert", [False, True], ids=["ca-only", "mutual-tls"])
def test_make_certs_tls_handshake_as_host_redis(certs: Path, client_cert: bool) -> None:
    """A real TLS handshake on loopback with hostname checking for "redis",
    the way the collab containers reach Redis (and, with the client
    certificate, the way Redis' default tls-auth-clients=yes would require)."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs / "ca.crt"))
    server_ctx.load_cert_chain(str(certs / "redis.crt"), str(certs / "redis.key"))
    server_ctx.verify_mode = ssl.CERT_REQUIRED if client_cert else ssl.CERT_NONE
    client_ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    if client_cert:
        client_ctx.load_cert_chain(str(certs / "client.crt"), str(certs / "client.key"))

    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(16))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname="redis") as tls,
        ):
            tls.sendall(b"PING")
            assert tls.recv(16) == b"PING"
    finally:
        thread.join(timeout=10)
        listener.close()
    assert not errors, errors


def test_generated_certificates_are_gitignored() -> None:
    git = require_tool("git")
    for name in ("ca.crt", "ca.key", "redis.key", "client.key"):
        result = subprocess.run(
            [git, "check-ignore", "-q", f"deploy/compose/certs/{name}"], cwd=REPO, check=False
        )
        assert result.returncode == 0, f"deploy/compose/certs/{name} is not ignored by git"
    result = subprocess.run(
        [git, "check-ignore", "-q", "deploy/compose/certs/.gitignore"], cwd=REPO, check=False
    )
    assert result.returncode == 1, "the certs/.gitignore itself must stay tracked"
