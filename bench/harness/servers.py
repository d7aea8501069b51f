"""The servers under test: how to start each one, wait for it, and stop it.

Every run gets a fresh server process (or processes) on a free loopback port,
pinned to CPU 0 with ``taskset``; the load generator runs on CPU 1. Servers are
started in their own session so that stopping one reaches every process it
spawned (uvicorn workers) and nothing else.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
SERVER_CPU = "0"
LOADGEN_CPU = "1"


class HarnessError(RuntimeError):
    """A server could not be started or did not become ready."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: str, argv: list[str]) -> list[str]:
    """Prefix argv with taskset when the machine has the CPU to pin to."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > int(cpu):
        return ["taskset", "-c", cpu, *argv]
    return argv


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise HarnessError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


def wait_ready(port: int, path: str, timeout: float, successes: int = 1) -> None:
    """GET path until it answers 200 `successes` times in a row.

    With `--workers 2` the port is bound before every worker is serving and
    the kernel spreads requests over workers, so several consecutive 200s
    are needed before the server counts as up. A Redis the server cannot
    reach shows up here, with the body of the readiness answer as the cause.
    """
    deadline = time.monotonic() + timeout
    streak, last = 0, ""
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            last = f"{resp.status} {resp.read(300).decode(errors='replace')}"
            streak = streak + 1 if resp.status == 200 else 0
        except OSError as exc:
            streak, last = 0, repr(exc)
        finally:
            conn.close()
        if streak >= successes:
            return
        time.sleep(0.1)
    raise HarnessError(f"GET {path} on {port} not ready after {timeout:.0f} s: {last}")


@dataclass
class Running:
    """Processes started for one run, and where the load generator connects."""

    procs: list[subprocess.Popen[bytes]]
    urls: list[str]
    logs: list[Path]
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)  # redis

    @property
    def server_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for log in self.logs:
            if log.exists():
                text = log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> None:
        for proc in [*self.procs, *self.extra]:
            stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 4.0) -> None:
    """SIGTERM the process's own session, then SIGKILL what is left.

    pycrdt-websocket's stuck sockets can block uvicorn's graceful shutdown,
    hence the short grace period.
    """
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def spawn(
    argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = BENCH
) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(
            pinned(SERVER_CPU, argv),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )


# ------------------------------------------------------------------ redis --


@dataclass(frozen=True)
class RedisTLS:
    port: int
    password: str
    ca_file: Path


def make_certs(tmp: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""
    ca_key, ca_crt = tmp / "ca.key", tmp / "ca.crt"
    key, csr, crt, ext = tmp / "redis.key", tmp / "redis.csr", tmp / "redis.crt", tmp / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=collab-bench-ca",
            "-keyout",
            ca_key,
            "-out",
            ca_crt,
        ],
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            key,
            "-out",
            csr,
        ],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca_crt,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext,
            "-out",
            crt,
        ],
    ]
    for argv in steps:
        subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=60)
    return ca_crt, crt, key


def start_redis_tls(tmp: Path) -> tuple[subprocess.Popen[bytes], RedisTLS]:
    """redis-server on a TLS-only loopback port, AUTH required, no client certs.

    ``--tls-auth-clients no`` mirrors ElastiCache, which encrypts in transit
    but does not ask clients for certificates.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        raise HarnessError("redis-server not found (Debian: apt-get install redis-server)")
    ca, crt, key = make_certs(tmp)
    port, password = free_port(), secrets.token_hex(16)
    proc = spawn(
        [
            exe,
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(crt),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            password,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        tmp / "redis.log",
    )
    wait_listening(port, proc, 10)
    info = RedisTLS(port, password, ca)
    redis_ping(info)
    return proc, info


def redis_ping(info: RedisTLS) -> None:
    """AUTH + PING over TLS with the CA, as collab will; raises on failure."""
    ctx = ssl.create_default_context(cafile=str(info.ca_file))
    with socket.create_connection(("127.0.0.1", info.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(f"AUTH {info.password}\r\nPING\r\n".encode())
            reply = b""
            deadline = time.monotonic() + 5
            while b"PONG" not in reply and time.monotonic() < deadline:
                chunk = tls.recv(256)
                if not chunk:
                    break
                reply += chunk
    if b"+OK" not in reply or b"+PONG" not in reply:
        raise HarnessError(f"redis TLS AUTH/PING failed: {reply!r}")


# ---------------------------------------------------------------- servers --


@dataclass(frozen=True)
class ServerSpec:
    """One server configuration as the harness and the report see it."""

    name: str
    proto: str  # "yws" or "hocuspocus"
    is_collab: bool
    start: Callable[[Path, Options], Running]
    note: str = ""


@dataclass(frozen=True)
class Options:
    python: str
    redis_mode: str  # "instances" or "workers"
    start_timeout: float = 20.0


def _node_peer(script: str, proto: str) -> Callable[[Path, Options], Running]:
    def start(tmp: Path, opts: Options) -> Running:
        port = free_port()
        log = tmp / f"{script}.log"
        proc = spawn(["node", str(BENCH / "peers" / script), str(port)], log)
        running = Running([proc], [f"ws://127.0.0.1:{port}/"], [log])
        _ready(running, port, proc, opts)
        return running

    return start


def _pycrdt(tmp: Path, opts: Options) -> Running:
    port = free_port()
    log = tmp / "pycrdt.log"
    proc = spawn([opts.python, str(BENCH / "peers" / "pycrdt_ws.py"), str(port)], log)
    running = Running([proc], [f"ws://127.0.0.1:{port}/"], [log])
    _ready(running, port, proc, opts)
    return running


def _ready(running: Running, port: int, proc: subprocess.Popen[bytes], opts: Options) -> None:
    try:
        wait_listening(port, proc, opts.start_timeout)
    except HarnessError as exc:
        tail = running.log_tail()
        running.stop()
        raise HarnessError(f"{exc}\n{tail}") from None


def collab_argv(opts: Options, port: int, workers: int = 1) -> list[str]:
    argv = [opts.python, "-m", "collab", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return argv


# The per-client throttles are for the internet; every benchmark client comes
# from 127.0.0.1 and the peers have no such limits, so the comparison runs
# with them off (the sync path is what is measured, not the throttles).
NO_THROTTLES = {"COLLAB_CONNECT_RATE": "0", "COLLAB_FRAME_RATE": "0"}


def _collab(path: str) -> Callable[[Path, Options], Running]:
    def start(tmp: Path, opts: Options) -> Running:
        port = free_port()
        log = tmp / "collab.log"
        env = {"COLLAB_STORE_URL": f"sqlite:///{tmp}/b.sqlite3", **NO_THROTTLES}
        proc = spawn(collab_argv(opts, port), log, env, cwd=REPO)
        running = Running([proc], [f"ws://127.0.0.1:{port}{path}"], [log])
        _ready(running, port, proc, opts)
        return running

    return start


def _collab_redis(tmp: Path, opts: Options) -> Running:
    """collab with two processes sharing a TLS Redis with AUTH.

    "instances" (default): two ``collab serve`` processes on two ports, so the
    load generator can put writers on one and readers on the other and every
    delivery crosses Redis. "workers": one ``collab serve --workers 2`` on one
    port; the kernel picks the worker, so about half the pairs cross.
    """
    redis_proc, info = start_redis_tls(tmp)
    env = {
        "COLLAB_STORE_URL": f"sqlite:///{tmp}/b.sqlite3",
        "COLLAB_REDIS_URL": f"rediss://127.0.0.1:{info.port}/0",
        "COLLAB_REDIS_PASSWORD": info.password,
        "COLLAB_REDIS_SSL_CA_CERTS": str(info.ca_file),
        **NO_THROTTLES,
    }
    running = Running([], [], [tmp / "redis.log"], extra=[redis_proc])
    try:
        if opts.redis_mode == "workers":
            port = free_port()
            log = tmp / "collab.log"
            proc = spawn(collab_argv(opts, port, workers=2), log, env, cwd=REPO)
            running.procs.append(proc)
            running.logs.append(log)
            running.urls.append(f"ws://127.0.0.1:{port}/")
            wait_listening(port, proc, opts.start_timeout)
            wait_ready(port, "/readyz", opts.start_timeout, successes=8)
        else:
            for i in range(2):
                port = free_port()
                log = tmp / f"collab{i}.log"
                proc = spawn(collab_argv(opts, port), log, env, cwd=REPO)
                running.procs.append(proc)
                running.logs.append(log)
                running.urls.append(f"ws://127.0.0.1:{port}/")
                wait_listening(port, proc, opts.start_timeout)
                wait_ready(port, "/readyz", opts.start_timeout)
    except (HarnessError, subprocess.SubprocessError) as exc:
        tail = running.log_tail()
        running.stop()
        raise HarnessError(f"{exc}\n{tail}") from None
    return running


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in [
        ServerSpec(
            "collab", "yws", True, _collab("/"), "collab serve, sqlite store, y-websocket protocol"
        ),
        ServerSpec(
            "collab-hocuspocus",
            "hocuspocus",
            True,
            _collab("/hocuspocus"),
            "collab serve, sqlite store, Hocuspocus protocol at /hocuspocus",
        ),
        ServerSpec(
            "collab-redis",
            "yws",
            True,
            _collab_redis,
            "two collab processes + TLS Redis (AUTH, CA-verified)",
        ),
        ServerSpec(
            "hocuspocus4",
            "hocuspocus",
            False,
            _node_peer("hocuspocus4.mjs", "hocuspocus"),
            "@hocuspocus/server 4.x, bare Server, Node 20",
        ),
        ServerSpec(
            "hocuspocus3",
            "hocuspocus",
            False,
            _node_peer("hocuspocus3.mjs", "hocuspocus"),
            "@hocuspocus/server 3.x, bare Server",
        ),
        ServerSpec(
            "y-websocket",
            "yws",
            False,
            _node_peer("ywebsocket.mjs", "yws"),
            "@y/websocket-server 0.1.x setupWSConnection (reference)",
        ),
        ServerSpec(
            "pycrdt-websocket",
            "yws",
            False,
            _pycrdt,
            "pycrdt-websocket 0.16.5 ASGIServer under uvicorn",
        ),
    ]
}
PEERS = [s.name for s in SERVERS.values() if not s.is_collab]
