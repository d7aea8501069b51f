"""Run the server under test: ``collab serve`` as a subprocess, or an ASGI app
in-process under real uvicorn. Both on a free loopback port, both ready (or
failed loudly) before the ``async with`` body runs.

Usage::

    async with run_collab(tmp_path, env={"COLLAB_STORE_URL": "memory://"}) as srv:
        srv.url, srv.ws_url, srv.port, srv.proc, srv.log_text()

    async with run_app(create_app(settings)) as app_srv:
        app_srv.ws_url
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from .ports import LOOPBACK, free_port

__all__ = ["CollabProcess", "RunningApp", "ServerStartError", "run_app", "run_collab"]

REPO_ROOT = Path(__file__).resolve().parents[2]
_BIND_FAILURE_MARKERS = ("address already in use", "error while attempting to bind")
_BIND_RETRIES = 3


class ServerStartError(RuntimeError):
    """The server under test did not become healthy in time (message carries its log)."""


@dataclass
class CollabProcess:
    """A running ``collab serve`` subprocess."""

    port: int
    proc: asyncio.subprocess.Process
    log_path: Path
    host: str = LOOPBACK
    argv: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Wait until ``text`` appears in the log; returns the log. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text()
            if text in log:
                return log
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{text!r} not in the log of {self.argv} after {timeout}s:\n{log}"
                )
            if self.proc.returncode is not None:
                raise ServerStartError(
                    f"server exited ({self.proc.returncode}) before logging {text!r}:\n{log}"
                )
            # The log is a file written by another process: nothing to await but
            # the process itself, whose exit also ends this wait.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), min(0.05, remaining))

    async def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. Returns the exit code."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                await self.kill()
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def kill(self, timeout: float = 10.0) -> int:
        """SIGKILL (the crash case) and reap."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), timeout)
        assert self.proc.returncode is not None
        return self.proc.returncode


def collab_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The subprocess environment: ours minus any inherited ``COLLAB_*`` (a
    developer's shell settings must not leak into a test), plus ``env``."""
    merged = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    merged["PYTHONUNBUFFERED"] = "1"
    # `python -m collab` must import this checkout even when it is not installed.
    merged["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    merged.update(env or {})
    return merged


async def _wait_healthy(
    proc: asyncio.subprocess.Process, url: str, timeout: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    last: str = "no attempt"
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if proc.returncode is not None:
                raise ServerStartError(
                    f"collab exited with code {proc.returncode} during start-up\n--- log ---\n"
                    + log.read_text(errors="replace")
                )
            try:
                response = await client.get(url)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerStartError(
                    f"GET {url} not 200 within {timeout}s (last: {last})\n--- log ---\n"
                    + log.read_text(errors="replace")
                )
            # Poll interval that also returns at once if the process dies.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), min(0.05, remaining))


@asynccontextmanager
async def run_collab(
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    *,
    port: int | None = None,
    name: str = "collab",
    module: str = "collab",
    startup_timeout: float = 30.0,
    shutdown_timeout: float = 10.0,
    health_path: str = "/healthz",
) -> AsyncIterator[CollabProcess]:
    """Start ``python -m collab serve --host 127.0.0.1 --port P [args]``.

    Waits for ``GET health_path`` to answer 200. stdout+stderr go to
    ``tmp_path/<name>-<port>.log``. On exit: SIGTERM, wait
    ``shutdown_timeout``, SIGKILL. A given ``port`` is used as is; otherwise a
    free one is picked (and re-picked if the bind loses a race). The
    subprocess runs in ``tmp_path`` with inherited ``COLLAB_*`` variables
    removed (see :func:`collab_env`). ``module`` exists to test this helper
    with a stand-in server.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    server: CollabProcess | None = None
    for attempt in range(_BIND_RETRIES):
        chosen = port if port is not None else free_port()
        log_path = tmp_path / f"{name}-{chosen}.log"
        argv = [
            sys.executable,
            "-m",
            module,
            "serve",
            "--host",
            LOOPBACK,
            "--port",
            str(chosen),
            *args,
        ]
        with open(log_path, "ab") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                env=collab_env(env),
                cwd=tmp_path,
            )
        candidate = CollabProcess(port=chosen, proc=proc, log_path=log_path, argv=argv)
        try:
            await _wait_healthy(proc, f"{candidate.url}{health_path}", startup_timeout, log_path)
        except BaseException as exc:
            await candidate.kill()
            bind_lost = any(m in candidate.log_text().lower() for m in _BIND_FAILURE_MARKERS)
            if (
                isinstance(exc, ServerStartError)
                and bind_lost
                and port is None
                and attempt < _BIND_RETRIES - 1
            ):
                continue
            raise
        server = candidate
        break
    assert server is not None
    try:
        yield server
    finally:
        await server.terminate(shutdown_timeout)


@dataclass
class RunningApp:
    """An ASGI app served in-process by uvicorn."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int
    host: str = LOOPBACK
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}"


@asynccontextmanager
async def run_app(
    app: Any,
    *,
    startup_timeout: float = 15.0,
    shutdown_timeout: float = 10.0,
    **config: Any,
) -> AsyncIterator[RunningApp]:
    """Serve ``app`` with ``uvicorn.Server`` in a background task on a free port.

    Binding port 0 and reading the bound socket avoids any port race.
    ``config`` goes to ``uvicorn.Config`` (e.g. ``ws_ping_interval=None``;
    ``ws`` defaults to ``"websockets-sansio"``; with ``ssl_certfile`` and
    ``ssl_keyfile`` the URLs are https/wss). On exit: ``should_exit``, wait
    ``shutdown_timeout``, then ``force_exit``, then cancel.
    """
    config.setdefault("log_level", "warning")
    config.setdefault("lifespan", "auto")
    # "auto" picks websockets' legacy implementation, which warns on import
    # (a DeprecationWarning fails a suite run with warnings as errors).
    if "websockets-sansio" in uvicorn.config.WS_PROTOCOLS:
        config.setdefault("ws", "websockets-sansio")
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=0, **config))
    # uvicorn's SIGINT/SIGTERM capture belongs to a real process; in a test
    # Ctrl-C must interrupt pytest, not quietly shut this server down.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]

    async def serve() -> None:
        try:
            await server.serve()
        except SystemExit as exc:
            # uvicorn sys.exit()s when the lifespan start-up fails; a SystemExit
            # escaping a task would tear down the whole event loop (and pytest).
            raise ServerStartError(
                f"uvicorn exited with code {exc.code} (lifespan start-up failed?)"
            ) from None

    task = asyncio.create_task(serve(), name="uvicorn-run_app")
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if task.done():
            exc = task.exception()
            raise ServerStartError(f"uvicorn exited during start-up: {exc!r}") from exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            server.should_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise ServerStartError(f"uvicorn did not start within {startup_timeout}s")
        # uvicorn offers no start event; wait on the task so a crash ends the wait at once.
        await asyncio.wait({task}, timeout=min(0.02, remaining))
    port = server.servers[0].sockets[0].getsockname()[1]
    running = RunningApp(
        server=server, task=task, port=port, tls=config.get("ssl_certfile") is not None
    )
    try:
        yield running
    finally:
        server.should_exit = True
        done, _ = await asyncio.wait({task}, timeout=shutdown_timeout)
        if not done:
            server.force_exit = True
            done, _ = await asyncio.wait({task}, timeout=shutdown_timeout)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif not task.cancelled() and task.exception() is not None:
            raise ServerStartError(f"uvicorn failed: {task.exception()!r}") from task.exception()
