"""``collab serve``: run the server under uvicorn, with a graceful drain.

On SIGTERM/SIGINT: readiness turns 503 and new sockets are refused at once;
after ``drain_seconds`` (or as soon as no socket is left) the remaining
sockets get 1001, rooms are stored, and the process exits 0 — or 1 when the
store did not take every edit (the rooms are named in the log): an
orchestrator must not read a data loss as a clean stop. A second signal
exits at once. uvicorn's own shutdown would close sockets with 1012 straight
away, which is why the drain runs before uvicorn is told to exit.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing import connection as mp_connection
from types import FrameType
from typing import Any, cast

import uvicorn

from .config import ENV_PREFIX, Settings, flat_fields, parse_value
from .errors import CloseCode, ConfigError
from .hooks import load_hooks
from .observability import logs
from .observability.metrics import mark_process_dead, multiproc_dir
from .stores import store_from_url
from .transport.uvicorn import protocol_class

log = logging.getLogger("collab.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="collab", description="Yjs sync server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the server",
        description=f"Every option is also the variable {ENV_PREFIX}<NAME>.",
    )
    for name, type_name in flat_fields():
        flag = "--" + name.replace("_", "-")
        if type_name in ("bool", bool):
            # A switch: `--demo` alone turns it on, `--no-demo` off (over the env).
            serve.add_argument(
                flag,
                dest=name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=f"env {ENV_PREFIX}{name.upper()}",
            )
            continue
        serve.add_argument(flag, dest=name, default=None, help=f"env {ENV_PREFIX}{name.upper()}")
    return parser


def settings_from(argv: Sequence[str] | None, environ: dict[str, str]) -> Settings:
    args = build_parser().parse_args(argv)
    types = dict(flat_fields())
    overrides = {
        k: v if isinstance(v, bool) else parse_value("--" + k.replace("_", "-"), types[k], v)
        for k, v in vars(args).items()
        if k != "command" and v is not None
    }
    return Settings.from_env(environ, **overrides)


def check_config(settings: Settings) -> None:
    """What a start-up would trip over, found before anything starts: the
    hooks import, the store URL, the Redis options (ConfigError names it)."""
    load_hooks(settings.hooks)
    store_from_url(settings.store_url, compact_threshold=settings.compact_threshold)
    if settings.redis.url:
        from .backplane.redis_options import RedisOptions

        RedisOptions.from_settings(settings.redis)


# The event loop's thread stack. yrs (pycrdt's Rust core) integrates and
# deletes nested types recursively: deleting a map nested ~40,000 deep, which
# fits in one 600 KB update, overflows the main thread's 8 MiB stack and kills
# the process with SIGSEGV. Virtual address space only: pages are committed
# as a deep document actually uses them.
LOOP_STACK_BYTES = 1 << 30


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._drain_task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What exists once the app has started (modules, the app, its
        # settings: ~42,000 objects) lives as long as the process: out of the
        # cycle collector with it. A full collection walked all of it, ~13 ms
        # with every socket waiting, which was the p99 of a paced fan-out to
        # 200 peers (bench/PROFILE.md). Later objects are collected as ever.
        gc.freeze()

    def run_on_large_stack(self, sockets: list[socket.socket] | None = None) -> None:
        """``run()`` on a thread with a :data:`LOOP_STACK_BYTES` stack. Signals
        still arrive on the main thread, which hands them to the loop."""
        failure: list[BaseException] = []

        def target() -> None:
            try:
                self.run(sockets=sockets)
            except BaseException as exc:  # re-raised on the main thread (SystemExit too)
                failure.append(exc)

        previous_size = threading.stack_size(LOOP_STACK_BYTES)
        try:
            thread = threading.Thread(target=target, name="collab-loop")
            thread.start()
        finally:
            threading.stack_size(previous_size)  # other threads keep the default

        def forward(sig: int, frame: FrameType | None) -> None:
            if self.loop is not None and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(self.handle_exit, sig, None)
            else:
                self.should_exit = True

        handlers = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            thread.join()  # a signal interrupts the wait, runs forward(), and the wait resumes
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        if failure:
            raise failure[0]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        app = self.config.loaded_app
        server = getattr(getattr(getattr(app, "app", app), "state", None), "collab", None)
        if self._drain_task is not None or server is None or not self.started:
            super().handle_exit(sig, frame)  # second signal, or not serving yet: exit now
            return
        loop = asyncio.get_event_loop()
        self._drain_task = loop.create_task(self._drain(server))

    async def _drain(self, server: Any) -> None:
        server.begin_drain()
        deadline = time.monotonic() + server.settings.drain_seconds
        # Let the load balancer see readiness fail while sockets keep working.
        while server.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        server.close_all(CloseCode.GOING_AWAY, "server shutting down")
        close_deadline = time.monotonic() + 5
        while server.connections and time.monotonic() < close_deadline:
            await asyncio.sleep(0.05)
        self.should_exit = True


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    from .app import create_app

    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws_ping_interval=settings.ping_interval,
        ws_ping_timeout=settings.ping_timeout,
        # Above our own limit so collab, not uvicorn, answers 1009 with a reason.
        ws_max_size=settings.max_frame_bytes * 2 + 1024,
        ws_per_message_deflate=False,
        # Reports 1006 and keepalive-timeout closes precisely, answers pings at
        # a bounded rate (see transport.uvicorn).
        ws=protocol_class(settings.ping_answer_rate),
        # X-Forwarded-For is read by collab's connect-rate gate, through
        # COLLAB_TRUSTED_PROXIES only; uvicorn would trust it from 127.0.0.1.
        proxy_headers=False,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening socket for uvicorn (shared by workers: inheritable)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def sockets_for(settings: Settings) -> list[socket.socket]:
    """The public port, and the operational one when ``COLLAB_METRICS_PORT``
    is set: one server, one app, which tells them apart by the local port."""
    socks = [listen(settings.host, settings.port)]
    if settings.metrics_port:
        socks.append(listen(settings.host, settings.metrics_port))
    return socks


def _worker(settings: Settings, socks: list[socket.socket]) -> None:
    logs.configure(settings.log_format, settings.log_level)
    _return_large_buffers_to_os()
    server = DrainingServer(uvicorn_config(settings))
    server.run_on_large_stack(sockets=socks)
    sys.exit(_exit_code(server))


def _exit_code(server: DrainingServer) -> int:
    """0 for a clean stop; 1 if it never started or edits were not stored."""
    app = server.config.loaded_app
    collab = getattr(getattr(getattr(app, "app", app), "state", None), "collab", None)
    if not server.started:
        return 1
    return 1 if collab is not None and collab.unsaved_rooms else 0


def run_workers(settings: Settings, metrics_dir: str | None = None) -> int:
    """Several processes accepting on one socket, each a full collab instance
    (rooms are shared between them through the Redis backplane).

    ``metrics_dir`` is prometheus-client's multiprocess directory: a worker
    that exits is marked dead there, so the live gauges (connections, rooms)
    stop counting what it held.
    """
    if not settings.redis.url:
        log.warning("--workers > 1 without COLLAB_REDIS_URL: workers will not share rooms")
    ctx = multiprocessing.get_context("spawn")
    socks = sockets_for(settings)
    procs = []
    for i in range(settings.workers):
        worker_settings = settings.replace(instance_id=f"{settings.instance_id}-w{i}")
        proc = ctx.Process(target=_worker, args=(worker_settings, socks), daemon=False)
        proc.start()
        procs.append(proc)
    log.info("started %d workers on %s:%d", len(procs), settings.host, settings.port)

    def forward(sig: int, frame: FrameType | None) -> None:
        for proc in procs:
            if proc.is_alive() and proc.pid:
                os.kill(proc.pid, sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = []
    running = {proc.sentinel: proc for proc in procs}
    while running:
        for sentinel in mp_connection.wait(list(running)):
            proc = running.pop(cast(int, sentinel))
            proc.join()
            code = proc.exitcode or 0
            if metrics_dir and proc.pid:
                mark_process_dead(proc.pid, metrics_dir)
            log.log(
                logging.INFO if code == 0 else logging.ERROR,
                "worker pid %s exited with code %d; %d still running",
                proc.pid,
                code,
                len(running),
            )
            codes.append(code if code >= 0 else 128 - code)  # -N: killed by signal N
    return max(codes, default=0)


# glibc's mallopt parameter for the size from which allocations are mmap'ed.
_M_MMAP_THRESHOLD = -3


def _return_large_buffers_to_os() -> None:
    """Make glibc give freed large buffers back to the OS.

    By default glibc raises its mmap threshold to the size of each large
    block freed (up to 32 MiB), so after one document-sized buffer is freed
    the next ones come from the heap and stay in RSS once freed: ten aborted
    non-readers of a 3 MiB document left 30 MiB resident although nothing
    held them. A fixed threshold keeps document-sized frames and buffers
    mmap'ed, so a limit's bound on memory is also a bound on RSS. Elsewhere
    than glibc (musl, macOS) this does nothing.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError) as exc:
        log.debug("mallopt unavailable: %s", exc)


def main(argv: Sequence[str] | None = None) -> int:
    environ = dict(os.environ)
    try:
        settings = settings_from(argv, environ)
        check_config(settings)
    except ConfigError as exc:
        # One line naming the variable, never a traceback.
        print(f"collab: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    _return_large_buffers_to_os()
    if settings.workers > 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Fresh per run: files of a previous run would be summed into this one.
        with multiproc_dir(os.environ.get("PROMETHEUS_MULTIPROC_DIR")) as path:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # workers inherit it
            if settings.workers > 1:
                return run_workers(settings, path)
            return _serve(settings)
    return _serve(settings)


def _serve(settings: Settings) -> int:
    server = DrainingServer(uvicorn_config(settings))
    if settings.metrics_port:
        socks = sockets_for(settings)
        log.info(
            "serving on %s:%d; health, readiness and metrics on port %d",
            settings.host,
            settings.port,
            settings.metrics_port,
        )
        server.run_on_large_stack(sockets=socks)
    else:
        server.run_on_large_stack()
    return _exit_code(server)
