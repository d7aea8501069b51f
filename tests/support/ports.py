"""Free loopback TCP ports for test servers.

A port found this way can be taken by someone else before the server binds it;
the helpers that start servers (``redis_server``, ``postgres_server``,
``servers.run_collab``) therefore retry with a fresh port when the bind fails.
"""

from __future__ import annotations

import contextlib
import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct TCP ports on ``host`` that were free a moment ago.

    All sockets are held open until every port is chosen, so the ports differ.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def port_is_listening(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
