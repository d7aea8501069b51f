"""A bare TCP WebSocket client for the cases a library client cannot play: a
peer that never answers pings, one killed without a close frame, one that
sends a close frame without a status code.

Blocking sockets; call from tests through ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from dataclasses import dataclass, field

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass
class Received:
    """What a raw client read: data frames, pings, and the close (if any)."""

    frames: list[bytes] = field(default_factory=list)
    pings: int = 0
    close_code: int | None = None
    close_reason: str = ""
    eof: bool = False


class RawWebSocket:
    def __init__(self, port: int, path: str, *, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self._buf = bytearray()
        while b"\r\n\r\n" not in self._buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self._buf.extend(chunk)
        end = self._buf.index(b"\r\n\r\n") + 4
        head = bytes(self._buf[:end])
        del self._buf[:end]
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head!r}")
        self.received = Received()

    # -- reading ------------------------------------------------------------

    def _need(self, n: int) -> bool:
        while len(self._buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return False
            self._buf.extend(chunk)
        return True

    def read_frame(self) -> tuple[int, bytes] | None:
        """One server frame (opcode, payload), or None at EOF. Pings are not answered."""
        if not self._need(2):
            return None
        opcode, length, pos = self._buf[0] & 0x0F, self._buf[1] & 0x7F, 2
        if length == 126:
            if not self._need(4):
                return None
            length, pos = struct.unpack(">H", self._buf[2:4])[0], 4
        elif length == 127:
            if not self._need(10):
                return None
            length, pos = struct.unpack(">Q", self._buf[2:10])[0], 10
        if not self._need(pos + length):
            return None
        payload = bytes(self._buf[pos : pos + length])
        del self._buf[: pos + length]
        r = self.received
        if opcode == OP_CLOSE:
            if len(payload) >= 2:
                r.close_code = struct.unpack(">H", payload[:2])[0]
                r.close_reason = payload[2:].decode()
            else:
                r.close_code = 1005
        elif opcode == OP_PING:
            r.pings += 1
        elif opcode in (OP_BINARY, OP_TEXT):
            r.frames.append(payload)
        return opcode, payload

    def read_data(self) -> bytes:
        """The next data frame (skipping pings); raises at a close or EOF."""
        while True:
            got = self.read_frame()
            if got is None:
                raise ConnectionError("EOF")
            if got[0] == OP_CLOSE:
                raise ConnectionError(f"closed: {self.received.close_code}")
            if got[0] in (OP_BINARY, OP_TEXT):
                return got[1]

    def read_until_closed(self) -> Received:
        """Read everything until the close frame and then EOF."""
        while True:
            got = self.read_frame()
            if got is None:
                self.received.eof = True
                return self.received
            if got[0] == OP_CLOSE:
                # Drain to EOF: the server closes TCP after its close frame.
                while self.read_frame() is not None:
                    pass
                self.received.eof = True
                return self.received

    # -- writing ------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes((0x80 | opcode,))
        if n < 126:
            head += bytes((0x80 | n,))
        elif n < 1 << 16:
            head += bytes((0x80 | 126,)) + struct.pack(">H", n)
        else:
            head += bytes((0x80 | 127,)) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_binary(self, payload: bytes) -> None:
        self.send_frame(OP_BINARY, payload)

    def send_close_without_status(self) -> None:
        """A close frame with an empty body: the peer must report 1005."""
        self.send_frame(OP_CLOSE, b"")

    # -- ending ---------------------------------------------------------------

    def kill(self) -> None:
        """Drop the TCP connection with a reset, no close frame: a killed client."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()
