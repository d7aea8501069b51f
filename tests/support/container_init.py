"""The privileged half of tests/support/container.py: a container sandbox
made of Linux namespaces, and processes started inside it. Run as root with
the host's Python; standard library only, because after ``chroot`` nothing of
the host is importable.

``python container_init.py sandbox SPEC.json``
    Unshares a mount and a network namespace (loopback up, nothing else) and
    mounts in it what a container runtime gives a container: an overlay whose
    lower layer is the image's read-only file system and whose upper layer is
    a fresh directory (the container layer: the image mount is never written),
    ``/proc``, a tmpfs ``/dev`` with the usual device nodes and ``/dev/shm``
    (no devpts, no ``/sys``: nothing here needs a terminal or sysfs; ``collab
    serve`` itself runs with neither /proc nor /dev, only a writable /data,
    but every runtime provides them and the process_* metrics read /proc),
    ``/etc/hosts``/``hostname``/``resolv.conf``, and the volumes. Then it
    forwards TCP: ``publish`` ports (host 127.0.0.1:<free port> -> sandbox
    127.0.0.1:<port>, as ``-p`` does) and ``reach`` ports (sandbox
    127.0.0.1:<port> -> host 127.0.0.1:<port>, so a name in /etc/hosts that
    maps to 127.0.0.1 reaches a server running on the host). It prints one
    JSON line ``{"ready": true, "published": {...}}`` and runs until SIGTERM
    or until its stdin closes (the test process went away).

``python container_init.py exec SPEC.json``
    Joins a sandbox's namespaces, ``chroot``s into its root, changes to the
    working directory, drops to the image's user (uid, gid, no supplementary
    groups) and ``execve``s the command with exactly the given environment,
    looked up on that environment's PATH. The process keeps this one's pid,
    so signals sent to it reach the command. Exit 127 when the command is not
    found, 126 when it cannot be executed (what Docker returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def _loopback_up() -> None:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _mount_point(path: str, like: str) -> None:
    """Create ``path`` as a directory or an empty file, matching ``like``."""
    if os.path.lexists(path):
        return
    if os.path.isdir(like):
        os.makedirs(path)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w"):
            pass


def _bind(source: str, target: str, *, readonly: bool = False) -> None:
    _mount_point(target, source)
    mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def _make_root(spec: dict[str, Any]) -> str:
    root = str(spec["root"])
    state = Path(spec["state"])
    for name in ("upper", "work"):
        (state / name).mkdir(parents=True, exist_ok=True)
    os.makedirs(root, exist_ok=True)
    mount(
        "overlay",
        root,
        "overlay",
        0,
        f"lowerdir={spec['lower']},upperdir={state / 'upper'},workdir={state / 'work'}",
    )

    proc = _inside(root, "/proc")
    os.makedirs(proc, exist_ok=True)
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)

    dev = _inside(root, "/dev")
    os.makedirs(dev, exist_ok=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for name in _DEVICES:
        _bind(f"/dev/{name}", os.path.join(dev, name))
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, os.path.join(dev, name))
    shm = os.path.join(dev, "shm")
    os.makedirs(shm)
    mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")

    hostname = spec["hostname"]
    etc = state / "etc"
    etc.mkdir(exist_ok=True)
    hosts = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"127.0.0.1\t{hostname}",
    ]
    hosts += [f"{address}\t{name}" for name, address in spec.get("hosts", {}).items()]
    files = {
        "hosts": "\n".join(hosts) + "\n",
        "hostname": hostname + "\n",
        "resolv.conf": "# no DNS server in this sandbox: names come from /etc/hosts\n",
    }
    for name, text in files.items():
        (etc / name).write_text(text)
        os.chmod(etc / name, 0o644)
        _bind(str(etc / name), _inside(root, f"/etc/{name}"))

    for volume in spec.get("volumes", []):
        _bind(
            volume["source"], _inside(root, volume["target"]), readonly=bool(volume.get("readonly"))
        )
    return root


# -- TCP forwarding across the two network namespaces -------------------------------


class _Namespaces:
    def __init__(self, host_fd: int, sandbox_fd: int) -> None:
        self.host_fd, self.sandbox_fd = host_fd, sandbox_fd

    def socket_in_host(self) -> socket.socket:
        """A TCP socket of the host's network namespace (sockets keep the
        namespace they were made in; this thread goes straight back)."""
        setns(self.host_fd, CLONE_NEWNET)
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            setns(self.sandbox_fd, CLONE_NEWNET)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    connect: Callable[[], Awaitable[socket.socket]],
) -> None:
    try:
        upstream = await connect()
    except OSError:
        # Nothing listens behind the port (yet, or any more): close, as
        # docker-proxy does once it cannot reach the container.
        writer.transport.abort()
        return
    up_reader, up_writer = await asyncio.open_connection(sock=upstream)
    try:
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
    finally:
        for w in (writer, up_writer):
            w.close()
            with contextlib.suppress(ConnectionError, OSError):
                await w.wait_closed()


def _connector(
    make: Callable[[], socket.socket], port: int
) -> Callable[[], Awaitable[socket.socket]]:
    async def connect() -> socket.socket:
        sock = make()
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except BaseException:
            sock.close()
            raise
        return sock

    return connect


def _listener(sock: socket.socket, port: int) -> socket.socket:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _handler(
    connect: Callable[[], Awaitable[socket.socket]],
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _relay(reader, writer, connect)

    return handle


def _sandbox_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


async def _serve(spec: dict[str, Any], ns: _Namespaces) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    servers = []
    published: dict[str, int] = {}
    for port in spec.get("publish", []):
        listening = _listener(ns.socket_in_host(), 0)
        published[str(port)] = listening.getsockname()[1]
        connect = _connector(_sandbox_socket, port)
        servers.append(await asyncio.start_server(_handler(connect), sock=listening))
    for rule in spec.get("reach", []):
        listening = _listener(_sandbox_socket(), rule["port"])
        connect = _connector(ns.socket_in_host, rule["host_port"])
        servers.append(await asyncio.start_server(_handler(connect), sock=listening))

    # The parent's end of our stdin closes when the test process goes away.
    stdin_closed = loop.create_future()

    def on_stdin() -> None:
        if not os.read(0, 4096) and not stdin_closed.done():
            stdin_closed.set_result(None)

    loop.add_reader(0, on_stdin)
    print(json.dumps({"ready": True, "pid": os.getpid(), "published": published}), flush=True)
    await asyncio.wait(
        [asyncio.ensure_future(stop.wait()), stdin_closed], return_when=asyncio.FIRST_COMPLETED
    )
    for server in servers:
        server.close()


def sandbox(spec: dict[str, Any]) -> None:
    host_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    unshare(CLONE_NEWNS | CLONE_NEWNET)
    # Nothing mounted here propagates back to the host.
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    sandbox_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    _loopback_up()
    _make_root(spec)
    asyncio.run(_serve(spec, _Namespaces(host_fd, sandbox_fd)))


# -- exec ---------------------------------------------------------------------------


def _lookup(table: str, key: str, field: int) -> int | None:
    """uid/gid of ``key`` from the image's /etc/passwd or /etc/group (we are
    already inside its root)."""
    if key.isdigit():
        return int(key)
    with contextlib.suppress(OSError), open(table) as f:
        for line in f:
            parts = line.rstrip("\n").split(":")
            if parts and parts[0] == key:
                return int(parts[field])
    return None


def _home(uid: int) -> str:
    with contextlib.suppress(OSError), open("/etc/passwd") as f:
        for line in f:
            parts = line.rstrip("\n").split(":")
            if len(parts) > 5 and parts[2] == str(uid):
                return parts[5]
    return "/"


def exec_in(spec: dict[str, Any]) -> None:
    pid = spec["sandbox_pid"]
    net = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    mnt = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    setns(net, CLONE_NEWNET)
    setns(mnt, CLONE_NEWNS)
    os.close(net)
    os.close(mnt)
    os.chroot(spec["root"])
    os.chdir("/")
    workdir = spec.get("workdir") or "/"
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)

    user, _, group = (spec.get("user") or "0").partition(":")
    uid = _lookup("/etc/passwd", user, 2)
    if uid is None:
        sys.exit(f"unable to find user {user}: no matching entries in passwd file")
    gid = _lookup("/etc/group", group, 2) if group else None
    if gid is None:
        with contextlib.suppress(OSError), open("/etc/passwd") as f:
            for line in f:
                parts = line.split(":")
                if len(parts) > 3 and parts[2] == str(uid):
                    gid = int(parts[3])
        gid = gid if gid is not None else 0
    env = dict(spec["env"])
    env.setdefault("HOSTNAME", spec.get("hostname", ""))
    env.setdefault("HOME", _home(uid))
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    argv = list(spec["argv"])
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        where = (
            "no such file or directory" if "/" in argv[0] else "executable file not found in $PATH"
        )
        print(f"exec: {argv[0]!r}: {where}", file=sys.stderr)
        os._exit(127)
    except OSError as exc:
        print(f"exec: {argv[0]!r}: {exc}", file=sys.stderr)
        os._exit(126 if exc.errno in (errno.EACCES, errno.ENOEXEC) else 127)


def main() -> None:
    command, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    if command == "sandbox":
        sandbox(spec)
    elif command == "exec":
        exec_in(spec)
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
