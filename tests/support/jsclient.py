"""Drive real JavaScript Yjs peers (y-websocket, HocuspocusProvider) from Python.

``tests/js/client.mjs`` is a long-running Node process controlled by JSON
lines; this module spawns it, matches replies to requests by id and collects
the unsolicited events. Every await has a timeout; a failure carries the
process' stderr.

Usage::

    async with JSClient.start(tmp_path) as js:
        await js.call("connect", handle="a", url=srv.ws_url, room="doc/1")
        await js.call("insert", handle="a", index=0, text="hello")
        await js.call("wait_text", handle="b", equals="hello", timeout_ms=5000)
        close = await js.event(lambda e: e["event"] == "close" and e["handle"] == "a")

    async with run_hocuspocus_server(tmp_path) as ref:   # @hocuspocus/server 3.x
        await js.call("connect_hocuspocus", handle="h", url=ref.url, name="doc")

See the header of ``tests/js/client.mjs`` for every command and event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "JS_DIR",
    "HocuspocusServer",
    "JSClient",
    "JSClientDied",
    "JSClientError",
    "JSClientTimeout",
    "run_hocuspocus_server",
]

JS_DIR = Path(__file__).resolve().parents[1] / "js"
CLIENT_SCRIPT = JS_DIR / "client.mjs"
HOCUSPOCUS_SERVER_SCRIPT = JS_DIR / "hocuspocus-server.mjs"
_INSTALL_HINT = "run scripts/install-test-deps.sh (needs Node >= 20; runs `npm ci` in tests/js)"
# Slack added to a command's own timeout_ms before Python gives up on the reply.
_REPLY_SLACK = 5.0
_DEFAULT_CALL_TIMEOUT = 15.0
_STDERR_TAIL = 8000
# A reply carrying a whole document state can be large.
_LINE_LIMIT = 64 * 1024 * 1024

Event = dict[str, Any]


class JSClientError(Exception):
    """A command answered ``ok: false``; ``data`` is the whole reply
    (``kind`` is e.g. ``timeout``, ``authenticationFailed``, ``disconnected``)."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data: dict[str, Any] = data or {}

    @property
    def kind(self) -> str | None:
        return self.data.get("kind")


class JSClientTimeout(JSClientError, TimeoutError):
    """No reply / no matching event within the Python-side timeout."""


class JSClientDied(JSClientError):
    """The Node process exited (or closed stdout) unexpectedly."""


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError(f"node not found on PATH; {_INSTALL_HINT}")
    return node


def _check_installed() -> None:
    if not (JS_DIR / "node_modules" / "yjs").is_dir():
        raise RuntimeError(f"{JS_DIR}/node_modules is missing; {_INSTALL_HINT}")


class JSClient:
    """One ``node tests/js/client.mjs`` process. Create with :meth:`start`."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr_path: Path | None) -> None:
        self.proc = proc
        self.events: list[Event] = []
        self._consumed: set[int] = set()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._stderr = bytearray()
        self._stderr_path = stderr_path
        self._stderr_file: IO[bytes] | None = open(stderr_path, "ab") if stderr_path else None
        self._changed = asyncio.Event()
        self._dead: str | None = None
        self._ready = asyncio.get_running_loop().create_future()
        self._tasks = [
            asyncio.create_task(self._read_stdout(), name="jsclient-stdout"),
            asyncio.create_task(self._read_stderr(), name="jsclient-stderr"),
        ]

    # -- lifecycle ------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        tmp_path: Path | None = None,
        *,
        startup_timeout: float = 20.0,
        exit_timeout: float = 10.0,
        env: dict[str, str] | None = None,
    ) -> AsyncIterator[JSClient]:
        """Spawn the driver, wait for its ``ready`` event, yield, then exit/kill it.

        stderr is kept in memory (``stderr_text``) and, with ``tmp_path``,
        written to ``tmp_path/jsclient-<pid>.stderr.log``.
        """
        _check_installed()
        proc = await asyncio.create_subprocess_exec(
            _node(),
            str(CLIENT_SCRIPT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=JS_DIR,
            env={**os.environ, **env} if env else None,
            limit=_LINE_LIMIT,
        )
        stderr_path = None
        if tmp_path is not None:
            tmp_path.mkdir(parents=True, exist_ok=True)
            stderr_path = tmp_path / f"jsclient-{proc.pid}.stderr.log"
        client = cls(proc, stderr_path)
        try:
            try:
                await asyncio.wait_for(asyncio.shield(client._ready), startup_timeout)
            except TimeoutError:
                raise JSClientTimeout(
                    f"client.mjs sent no 'ready' within {startup_timeout}s" + client._stderr_note()
                ) from None
            yield client
        finally:
            await client.close(exit_timeout)

    async def close(self, timeout: float = 10.0) -> None:
        """Ask the driver to exit (closing every connection), then kill if needed."""
        if self.proc.returncode is None and self._dead is None:
            with contextlib.suppress(JSClientError, ConnectionError, RuntimeError):
                await self.call("exit", timeout=timeout)
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), timeout)
        # Readers end at EOF once the process is gone.
        _, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    # -- I/O ------------------------------------------------------------------

    @property
    def stderr_text(self) -> str:
        return self._stderr.decode(errors="replace")

    def _stderr_note(self) -> str:
        tail = self.stderr_text[-_STDERR_TAIL:]
        where = f" ({self._stderr_path})" if self._stderr_path else ""
        return f"\n--- client.mjs stderr{where} ---\n{tail}" if tail else ""

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self._stderr += chunk
            if self._stderr_file is not None:
                self._stderr_file.write(chunk)
                self._stderr_file.flush()

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                self._dispatch(line)
        finally:
            code = await self.proc.wait()
            self._dead = f"client.mjs exited with code {code}"
            died = JSClientDied(self._dead + self._stderr_note())
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(died)
            self._pending.clear()
            if not self._ready.done():
                self._ready.set_exception(died)
            self._changed.set()

    def _dispatch(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            # Not ours (client.mjs keeps stdout clean); keep it visible.
            self._stderr += b"[stdout, not JSON] " + line
            return
        if "event" in msg and "id" not in msg:
            if msg["event"] == "ready" and not self._ready.done():
                self._ready.set_result(msg)
            self.events.append(msg)
            self._changed.set()
            return
        future = self._pending.pop(msg.get("id"), None)
        if future is None or future.done():
            return
        if msg.get("ok"):
            future.set_result(msg.get("result"))
        else:
            cls = JSClientTimeout if msg.get("kind") == "timeout" else JSClientError
            future.set_exception(cls(str(msg.get("error")), msg))

    # -- API ------------------------------------------------------------------

    async def call(self, cmd: str, *, timeout: float | None = None, **params: Any) -> Any:
        """Send ``cmd`` and return its result; raise :class:`JSClientError` on ``ok: false``.

        ``timeout`` (seconds) defaults to the command's ``timeout_ms`` plus a few
        seconds of slack, or 15 s.
        """
        if self._dead is not None:
            raise JSClientDied(self._dead + self._stderr_note())
        if timeout is None:
            timeout_ms = params.get("timeout_ms")
            timeout = timeout_ms / 1000 + _REPLY_SLACK if timeout_ms else _DEFAULT_CALL_TIMEOUT
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(
                (json.dumps({"id": request_id, "cmd": cmd, **params}) + "\n").encode()
            )
            await asyncio.wait_for(self.proc.stdin.drain(), timeout)
            # asyncio.wait, not wait_for: a JS-side timeout reply is itself a
            # TimeoutError and must reach the caller unchanged.
            done, _ = await asyncio.wait({future}, timeout=timeout)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise JSClientDied(f"client.mjs stdin closed: {exc!r}" + self._stderr_note()) from exc
        except TimeoutError:
            raise JSClientTimeout(
                f"could not send {cmd!r} within {timeout}s" + self._stderr_note()
            ) from None
        finally:
            self._pending.pop(request_id, None)
        if not done:
            future.cancel()
            raise JSClientTimeout(
                f"no reply to {cmd!r} (id {request_id}) within {timeout}s" + self._stderr_note()
            )
        return future.result()

    async def event(
        self,
        predicate: Callable[[Event], bool] | None = None,
        *,
        timeout: float = 10.0,
        since: int = 0,
        **match: Any,
    ) -> Event:
        """Return the oldest not-yet-returned event satisfying ``predicate`` and
        every ``key=value`` in ``match`` (e.g. ``event="close", handle="a"``).

        Each event is returned at most once, so waiting for "the next close"
        never matches an earlier one that a previous wait already took; with
        ``since=js.mark()`` only events that arrive after the mark count. Raises
        :class:`JSClientTimeout` (listing the events seen) after ``timeout``.
        """

        def matches(ev: Event) -> bool:
            if any(ev.get(k) != v for k, v in match.items()):
                return False
            return predicate is None or predicate(ev)

        deadline = time.monotonic() + timeout
        while True:
            for index in range(since, len(self.events)):
                ev = self.events[index]
                if index not in self._consumed and matches(ev):
                    self._consumed.add(index)
                    return ev
            if self._dead is not None:
                raise JSClientDied(
                    f"{self._dead} while waiting for event {match or predicate}"
                    + self._stderr_note()
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                wanted = f"{match or ''}{' + predicate' if predicate else ''}"
                raise JSClientTimeout(
                    f"no event matching {wanted} within {timeout}s; "
                    f"events: {json.dumps(self.events[-30:])}" + self._stderr_note()
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def mark(self) -> int:
        """A position in the event log, for ``event(..., since=mark)``."""
        return len(self.events)

    def events_for(self, handle: str, name: str | None = None) -> list[Event]:
        """All events (consumed or not) of one connection, optionally one kind."""
        return [
            e
            for e in self.events
            if e.get("handle") == handle and (name is None or e.get("event") == name)
        ]


@dataclass
class HocuspocusServer:
    """The reference ``@hocuspocus/server`` 3.x started by :func:`run_hocuspocus_server`."""

    port: int
    version: str
    proc: asyncio.subprocess.Process
    log_path: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@asynccontextmanager
async def run_hocuspocus_server(
    tmp_path: Path,
    *,
    port: int | None = None,
    startup_timeout: float = 20.0,
    stop_timeout: float = 10.0,
) -> AsyncIterator[HocuspocusServer]:
    """Run ``tests/js/hocuspocus-server.mjs`` on a loopback port: by default a
    free one (it binds port 0 and reports the port, so there is no race); pass
    ``port`` to come back on the same address after a restart. See the script
    header for its auth and stateless behaviour."""
    _check_installed()
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_path = tmp_path / "hocuspocus-server.log"
    with open(log_path, "ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            _node(),
            str(HOCUSPOCUS_SERVER_SCRIPT),
            *(["--port", str(port)] if port is not None else []),
            stdin=asyncio.subprocess.PIPE,  # closing it stops the server
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            cwd=JS_DIR,
        )
    assert proc.stdout is not None and proc.stdin is not None

    def fail(message: str) -> RuntimeError:
        return RuntimeError(
            f"{message}\n--- hocuspocus-server log ---\n" + log_path.read_text(errors="replace")
        )

    try:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), startup_timeout)
        except TimeoutError:
            raise fail(
                f"hocuspocus-server.mjs did not report listening within {startup_timeout}s"
            ) from None
        if not line:
            raise fail(f"hocuspocus-server.mjs exited with code {await proc.wait()}")
        info = json.loads(line)
        yield HocuspocusServer(
            port=int(info["port"]), version=str(info["version"]), proc=proc, log_path=log_path
        )
    finally:
        if proc.returncode is None:
            proc.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), stop_timeout)
            except TimeoutError:
                proc.kill()
                await asyncio.wait_for(proc.wait(), stop_timeout)
