"""Run an image's processes as a container would, without a container engine.

``podman run`` does not work on this kind of machine (crun's setrlimit of
RLIMIT_NOFILE / RLIMIT_NPROC fails with EPERM: the capability bounding set has
no CAP_SYS_RESOURCE), but everything a container is made of is available to
root: ``podman image mount`` gives the image's file system, and
``tests/support/container_init.py`` builds the rest from namespaces (see its
docstring): an overlay over the read-only image with a per-container upper
layer, /proc, /dev, /etc/hosts, volumes, a network namespace of its own with
ports published to the host, and processes that ``chroot`` in and run as the
image's user with the image's environment and working directory.

What runs is the image's, unchanged: its ENTRYPOINT + CMD (or a compose
file's entrypoint + command), its ENV (plus HOSTNAME and HOME, as Docker adds
them), its USER and WORKDIR; the server binds the image's 0.0.0.0:1234 inside
its own network namespace, and the HEALTHCHECK command reaches it on
127.0.0.1:1234 there, as in a real container.

Not emulated: a PID namespace (the server is not pid 1), cgroup limits,
capabilities beyond what dropping to a non-root uid removes, seccomp.

    with Sandbox(image, lower=mount, state=tmp / "c1", publish=[1234]) as box:
        config = container_config(image)
        proc = subprocess.Popen(box.exec_argv(config.argv, config))
        box.host_port(1234)   # -> 127.0.0.1:<port> on the host
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from .image import BuiltImage, require_root

__all__ = ["ContainerConfig", "Sandbox", "SandboxError", "Volume", "container_config"]

INIT_SCRIPT = Path(__file__).resolve().with_name("container_init.py")
_READY_TIMEOUT = 20.0


class SandboxError(RuntimeError):
    pass


@dataclass(frozen=True)
class ContainerConfig:
    """What a container of the image runs, merged as Docker merges it."""

    argv: list[str]
    env: dict[str, str]
    user: str
    workdir: str


def container_config(
    image: BuiltImage,
    *,
    entrypoint: Sequence[str] | None = None,
    command: Sequence[str] | None = None,
    environment: Mapping[str, str] | None = None,
    user: str | None = None,
) -> ContainerConfig:
    """The image's ENTRYPOINT/CMD/ENV/USER/WORKDIR with ``docker run`` /
    compose overrides: a new entrypoint drops the image's CMD (unless a
    command is given too); environment entries override the image's."""
    if entrypoint is not None:
        argv = [*entrypoint, *(command or [])]
    else:
        argv = [*image.entrypoint, *(command if command is not None else image.cmd)]
    env = {**image.env, **(environment or {})}
    return ContainerConfig(argv, env, user if user is not None else image.user, image.workdir)


@dataclass(frozen=True)
class Volume:
    """``source`` on the host mounted at ``target``. ``named=True`` behaves like
    a Docker named (or anonymous) volume: when empty, it is first filled from
    the image's directory at ``target``, with its owner and mode."""

    source: Path
    target: str
    readonly: bool = False
    named: bool = False


@dataclass
class Sandbox:
    """One container's namespaces and root file system (the "infra" process of
    a pod): stays up while processes come and go, so a health check can run
    after the server stopped, and stops last."""

    image: BuiltImage
    lower: Path
    state: Path
    hostname: str = "collab"
    volumes: list[Volume] = field(default_factory=list)
    publish: list[int] = field(default_factory=list)
    reach: dict[int, int] = field(default_factory=dict)  # sandbox port -> host port
    hosts: dict[str, str] = field(default_factory=dict)

    proc: subprocess.Popen[bytes] | None = None
    published: dict[int, int] = field(default_factory=dict)
    # What is mounted where, anonymous volumes included: {source, target, readonly}.
    mounts: list[dict[str, Any]] = field(default_factory=list)
    _log: IO[bytes] | None = None
    _execs: int = 0

    @property
    def root(self) -> Path:
        return self.state / "root"

    @property
    def log_path(self) -> Path:
        return self.state / "sandbox.log"

    def _init_volumes(self) -> list[dict[str, Any]]:
        mounted_targets = {v.target.rstrip("/") for v in self.volumes}
        volumes = list(self.volumes)
        # VOLUME entries nothing is mounted on get an anonymous volume.
        for target in self.image.volumes:
            if target.rstrip("/") not in mounted_targets:
                name = target.strip("/").replace("/", "_") or "root"
                volumes.append(Volume(self.state / "volumes" / name, target, named=True))
        out = []
        for volume in volumes:
            if volume.named:
                volume.source.mkdir(parents=True, exist_ok=True)
                if not any(volume.source.iterdir()):
                    template = self.lower / volume.target.lstrip("/")
                    if template.is_dir():
                        info = template.stat()
                        for child in template.iterdir():
                            subprocess.run(["cp", "-a", str(child), str(volume.source)], check=True)
                        os.chown(volume.source, info.st_uid, info.st_gid)
                        os.chmod(volume.source, info.st_mode & 0o7777)
            elif not volume.source.exists():
                # Docker would create a missing bind source as an empty directory,
                # which hides the mistake; fail instead.
                raise SandboxError(f"bind mount source {volume.source} does not exist")
            out.append(
                {"source": str(volume.source), "target": volume.target, "readonly": volume.readonly}
            )
        return out

    def start(self) -> Sandbox:
        require_root()
        self.state.mkdir(parents=True, exist_ok=True)
        self.mounts = self._init_volumes()
        spec = {
            "lower": str(self.lower),
            "state": str(self.state),
            "root": str(self.root),
            "hostname": self.hostname,
            "hosts": self.hosts,
            "volumes": self.mounts,
            "publish": list(self.publish),
            "reach": [{"port": p, "host_port": h} for p, h in self.reach.items()],
        }
        spec_path = self.state / "sandbox.json"
        spec_path.write_text(json.dumps(spec, indent=1))
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(INIT_SCRIPT), "sandbox", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + _READY_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                self.stop()
                raise SandboxError(
                    f"the sandbox did not come up (exit {self.proc.returncode}):\n{self.log_text()}"
                )
            ready, _, _ = select.select([self.proc.stdout], [], [], min(remaining, 0.2))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                line += chunk
        message = json.loads(line)
        self.published = {int(k): int(v) for k, v in message["published"].items()}
        return self

    def host_port(self, port: int) -> int:
        """The host port (127.0.0.1) that reaches ``port`` inside the sandbox."""
        return self.published[port]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def exec_argv(self, argv: Sequence[str], config: ContainerConfig) -> list[str]:
        """The host command line that runs ``argv`` in this sandbox as
        ``config``'s user, in its working directory, with its environment only."""
        if self.proc is None or self.proc.poll() is not None:
            raise SandboxError(f"the sandbox is not running:\n{self.log_text()}")
        self._execs += 1
        spec = {
            "sandbox_pid": self.proc.pid,
            "root": str(self.root),
            "argv": list(argv),
            "env": config.env,
            "user": config.user,
            "workdir": config.workdir,
            "hostname": self.hostname,
        }
        path = self.state / f"exec-{self._execs}.json"
        path.write_text(json.dumps(spec, indent=1))
        return [sys.executable, "-I", str(INIT_SCRIPT), "exec", str(path)]

    def run(
        self, argv: Sequence[str], config: ContainerConfig, *, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """``docker exec``: run ``argv`` to completion; output captured."""
        return subprocess.run(
            self.exec_argv(argv, config),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={},
        )

    def healthcheck(self, config: ContainerConfig) -> subprocess.CompletedProcess[str]:
        """One run of the image's HEALTHCHECK, with its own timeout."""
        check = self.image.healthcheck
        test = list(check.get("Test") or [])
        if not test or test[0] == "NONE":
            raise SandboxError(f"{self.image.tag} has no HEALTHCHECK")
        if test[0] == "CMD":
            argv = test[1:]
        elif test[0] == "CMD-SHELL":
            argv = ["/bin/sh", "-c", test[1]]
        else:
            raise SandboxError(f"unknown HEALTHCHECK form {test!r}")
        timeout = (check.get("Timeout") or 30_000_000_000) / 1e9
        try:
            return self.run(argv, config, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, -1, "", f"timed out after {timeout}s")

    def _kill_members(self) -> None:
        """SIGKILL whatever still runs in this sandbox (a runtime kills the
        container's cgroup; here, the processes in its network namespace)."""
        assert self.proc is not None
        try:
            ours = os.stat(f"/proc/{self.proc.pid}/ns/net").st_ino
        except OSError:
            return
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.proc.pid:
                continue
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}/ns/net").st_ino == ours:
                    os.kill(int(entry), signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._kill_members()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
