"""The Dockerfile: lint-clean, and the runtime contract the other artifacts
(compose, the Fargate task definition) rely on."""

from __future__ import annotations

import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .artifacts import DOCKERFILE, DOCKERIGNORE, REPO, image, option, require_tool, run_tool

SERVE_ARGV = ["collab", "serve", "--host", "0.0.0.0", "--port", "1234"]


def test_hadolint_is_clean() -> None:
    hadolint = require_tool("hadolint")
    result = run_tool([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_images_are_pinned_slim_python_311() -> None:
    for stage in image().stages:
        assert stage.base == "python:3.11-slim-bookworm", stage.base


def test_multi_stage_runtime_gets_only_the_venv() -> None:
    stages = image().stages
    assert len(stages) >= 2
    builder = stages[0].name
    copies = image().final.all("COPY")
    assert copies == [f"--from={builder} /opt/venv /opt/venv"], copies
    # The builder installs the pinned lock, then the project without deps.
    runs = " ".join(stages[0].all("RUN"))
    assert "--requirement requirements.lock" in runs or "-r requirements.lock" in runs
    assert "--no-deps" in runs


def test_runs_the_server_in_exec_form() -> None:
    # Exec form (JSON arrays) so the server is the process that gets SIGTERM.
    assert image().argv == SERVE_ARGV
    assert image().stopsignal == "SIGTERM"


def test_non_root_user() -> None:
    user = image().user
    assert user is not None
    assert user.split(":")[0] not in ("root", "0")


def test_environment() -> None:
    env = image().env
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["COLLAB_LOG_FORMAT"] == "json"
    assert env["PATH"].startswith("/opt/venv/bin:")
    store = env["COLLAB_STORE_URL"]
    assert store.startswith("sqlite:////"), store
    # The SQLite file lives on the declared volume, not in the container layer.
    path = store.removeprefix("sqlite:///")
    volumes = image().volumes
    assert any(path.startswith(v.rstrip("/") + "/") for v in volumes), (path, volumes)


def test_exposed_port_matches_command_and_healthcheck() -> None:
    port = option(image().argv, "--port")
    assert image().exposed == [port]
    hc = image().healthcheck
    assert hc[:2] == ["python", "-c"], "the health check must not need curl"
    assert f"127.0.0.1:{port}/healthz" in hc[2]


def _healthz_server(status: int) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/healthz" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@contextmanager
def _serving(status: int) -> Iterator[int]:
    httpd = _healthz_server(status)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _run_healthcheck(port: int) -> int:
    code = image().healthcheck[2].replace(":1234/", f":{port}/")
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=30, check=False
    ).returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_one_liner_exit_code(status: int, healthy: bool) -> None:
    with _serving(status) as port:
        assert (_run_healthcheck(port) == 0) is healthy


def test_healthcheck_one_liner_fails_when_nothing_listens() -> None:
    with _serving(200) as port:
        pass  # closed again: the port is now refused
    assert _run_healthcheck(port) != 0


def _glob(pattern: str) -> re.Pattern[str]:
    """Go filepath.Match as Docker uses it: '*' and '?' stop at '/'."""
    out = ""
    for ch in pattern:
        out += {"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch))
    return re.compile(out)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics, enough for this file: patterns are
    anchored at the context root (``**/`` matches at any depth), a match on a
    directory covers what is inside it, the last matching pattern wins, and
    ``!`` re-includes."""
    parts = path.split("/")
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.removeprefix("!").rstrip("/")
        anywhere = pat.startswith("**/")
        regex = _glob(pat.removeprefix("**/"))
        starts = range(len(parts)) if anywhere else range(1)
        candidates = ["/".join(parts[i:j]) for i in starts for j in range(i + 1, len(parts) + 1)]
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for stage in image().stages:
        for args in stage.all("COPY"):
            words = [w for w in args.split() if not w.startswith("--")]
            if "--from=" not in args:
                sources += words[:-1]
    assert sources, "no COPY from the build context?"
    for src in sources:
        assert (REPO / src).exists(), f"the Dockerfile COPYs {src}, which does not exist"
        assert not _ignored(src, patterns), f"{src} is COPYed but excluded by .dockerignore"
    assert not _ignored("collab/server.py", patterns)
    for private in (
        ".git/config",
        ".venv/bin/python",
        "tests/deploy/test_dockerfile.py",
        "deploy/compose/certs/redis.key",
        "collab/__pycache__/x.pyc",
        "collab.sqlite3",
        "bench/package.json",
    ):
        assert _ignored(private, patterns), f"{private} would be sent to the Docker daemon"
