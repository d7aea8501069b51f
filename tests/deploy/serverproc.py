"""A real ``collab serve`` process on a loopback port, and a minimal Yjs
client speaking the y-websocket protocol over ``websockets``.

Frames (DESIGN.md §3): varUint message type (0 sync, 1 awareness, ...); a
sync message continues with varUint sub-type (0 step1, 1 step2, 2 update)
and a varUint8Array payload. The decoding here is deliberately independent
of ``collab.protocol``: these tests check the server from the outside.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pycrdt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

SYNC, AWARENESS = 0, 1
STEP1, STEP2, UPDATE = 0, 1, 2
START_TIMEOUT = 20.0
EXIT_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_bin(name: str) -> str:
    """A console script installed next to the interpreter running the tests."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), (
        f"{path} does not exist: install the project into this environment "
        f"(pip install -e . or pip install --no-deps .)"
    )
    return str(path)


def hermetic_environ(**extra: str) -> dict[str, str]:
    """The test process' environment without any COLLAB_* setting of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLAB_")}
    env.update(extra)
    return env


# -- lib0 / y-websocket frames ------------------------------------------------------


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


@dataclass(frozen=True)
class SyncFrame:
    subtype: int
    payload: bytes


def parse_sync(frame: bytes) -> SyncFrame | None:
    """The sync message in ``frame``, or None for any other message type."""
    kind, pos = read_var_uint(frame, 0)
    if kind != SYNC:
        return None
    subtype, pos = read_var_uint(frame, pos)
    length, pos = read_var_uint(frame, pos)
    payload = frame[pos : pos + length]
    assert len(payload) == length and pos + length == len(frame), frame.hex()
    return SyncFrame(subtype, payload)


class YClient:
    """One y-websocket peer with its own pycrdt document."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.doc = pycrdt.Doc()
        self.text = self.doc.get("text", type=pycrdt.Text)
        self.received: list[SyncFrame] = []

    @classmethod
    async def connect(cls, url: str) -> YClient:
        return cls(await connect(url, open_timeout=10, close_timeout=5))

    async def next_sync(self, timeout: float = 10) -> SyncFrame:
        """The next sync frame (awareness and other frames are skipped);
        updates are applied to this client's document."""
        with anyio.fail_after(timeout):
            while True:
                data = await self.ws.recv()
                assert isinstance(data, bytes), f"text frame from the server: {data!r}"
                frame = parse_sync(data)
                if frame is None:
                    continue
                self.received.append(frame)
                if frame.subtype in (STEP2, UPDATE):
                    self.doc.apply_update(frame.payload)
                return frame

    async def handshake(self, timeout: float = 10) -> None:
        """Server speaks first with step1; we send ours and get step2 back."""
        first = await self.next_sync(timeout)
        assert first.subtype == STEP1, f"server's first sync frame is {first}"
        await self.ws.send(pycrdt.create_sync_message(self.doc))
        # Answer the server's step1 too, as a Yjs client does.
        reply = pycrdt.handle_sync_message(bytes([STEP1]) + _var_bytes(first.payload), self.doc)
        assert reply is not None and reply[0] == SYNC
        await self.ws.send(reply)
        with anyio.fail_after(timeout):
            while (await self.next_sync(timeout)).subtype != STEP2:
                pass

    async def insert(self, text: str) -> None:
        before = self.doc.get_state()
        self.text += text
        await self.ws.send(pycrdt.create_update_message(self.doc.get_update(before)))

    async def wait_text(self, expected: str, timeout: float = 10) -> None:
        with anyio.fail_after(timeout):
            while str(self.text) != expected:
                await self.next_sync(timeout)

    async def wait_closed(self, timeout: float = 15) -> tuple[int | None, str]:
        """Read until the server closes; its close code and reason."""
        with anyio.fail_after(timeout):
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed as exc:
                rcvd = exc.rcvd
                return (rcvd.code, rcvd.reason) if rcvd else (None, "")

    async def close(self) -> None:
        await self.ws.close()


def _var_bytes(payload: bytes) -> bytes:
    """varUint8Array encoding of ``payload``."""
    out, n = bytearray(), len(payload)
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out) + payload


# -- the server process --------------------------------------------------------------


class ServerProcess:
    """``argv`` running with ``env`` on ``port``; output goes to ``log_path``.

    The process gets its own session (process group), so cleanup reaches its
    children too: nginx workers outlive a SIGKILLed master otherwise.
    ``cleanup_signal`` is tried first (nginx: SIGTERM, its fast shutdown);
    None means straight to SIGKILL (a collab server would start a drain).
    """

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        port: int,
        cwd: Path,
        log_path: Path,
        *,
        cleanup_signal: signal.Signals | None = None,
    ) -> None:
        self.argv, self.env, self.port = argv, dict(env), port
        self.cwd, self.log_path = cwd, log_path
        self.cleanup_signal = cleanup_signal
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"
        self.ws_base = f"ws://127.0.0.1:{port}"

    def start(self) -> ServerProcess:
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output()}")

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=2) as client:
            return await client.get(self.base + path)

    async def wait_status(
        self, path: str, status: int, timeout: float = START_TIMEOUT
    ) -> httpx.Response:
        """Poll ``path`` until it answers ``status``."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                response = await self.get(path)
                if response.status_code == status:
                    return response
                last = response.status_code
            except httpx.TransportError as exc:
                last = exc
            await anyio.sleep(0.02)
        raise AssertionError(f"{path} never answered {status} (last: {last!r}):\n{self.output()}")

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        assert self.proc is not None
        try:
            # The exit itself, awaited in a worker thread: the loop stays free.
            return await anyio.to_thread.run_sync(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            output = self.output()
            raise AssertionError(f"server still running {timeout}s later:\n{output}") from None

    def kill(self) -> None:
        """Cleanup: never leave a server (or its children) behind, whatever
        the test did."""
        if self.proc is None:
            return
        if self.proc.poll() is None and self.cleanup_signal is not None:
            self.proc.send_signal(self.cleanup_signal)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # The group outlives its leader when children linger: kill it anyway.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def collab_serve(port: int, env: Mapping[str, str], cwd: Path, log_path: Path) -> ServerProcess:
    argv = [venv_bin("collab"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess(argv, env, port, cwd, log_path)
