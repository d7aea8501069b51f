"""A real ``redis-server`` on a free loopback port, for integration tests.

The Fargate incident (DESIGN.md §2) was a TLS Redis reached without its AUTH
token, so the tests need the real thing: plain or TLS, with a password
(``requirepass``, the ElastiCache AUTH token) and ACL users, with or without
required client certificates, and a server that can be killed, frozen and
brought back on the same port.

Usage::

    certs = make_certs(tmp_path / "pki")
    with RedisServer(tmp_path / "redis", tls=True, certs=certs, password="s3cret",
                     users={"app": "apppw"}) as redis_srv:
        url = redis_srv.url()                      # rediss://:s3cret@127.0.0.1:PORT/0?ssl_ca_certs=...
        client = redis_srv.client(username="app")  # redis.Redis, TLS + ACL user
        redis_srv.kill(); redis_srv.restart()      # same port

Every method that waits takes a timeout and raises :class:`RedisServerError`
with the server's log when it runs out. The ``a``-prefixed methods run the
blocking ones in a thread for use inside an event loop that also hosts the
server under test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from .certs import CertBundle
from .ports import LOOPBACK, free_port

__all__ = ["RedisServer", "RedisServerError", "redis_server"]

_INSTALL_HINT = "run scripts/install-test-deps.sh (installs Debian's redis-server)"
# Unset means "use the server's default-user password".
_UNSET: Any = object()
_BIND_RETRIES = 3


class RedisServerError(RuntimeError):
    """The test Redis could not be started, reached or stopped."""


def find_redis_server() -> str:
    """Path of the ``redis-server`` binary (``$COLLAB_TEST_REDIS_SERVER`` or PATH)."""
    explicit = os.environ.get("COLLAB_TEST_REDIS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RedisServerError(f"COLLAB_TEST_REDIS_SERVER={explicit!r} is not executable")
        return explicit
    found = shutil.which("redis-server")
    if found is None:
        raise RedisServerError(f"redis-server not found on PATH; {_INSTALL_HINT}")
    return found


class RedisServer:
    """One ``redis-server`` process with its config, log and data in ``directory``.

    ``port`` is the port clients use: the TLS port in TLS mode (the plain port
    is then disabled with ``port 0``, as on ElastiCache with in-transit
    encryption). ``tls_auth_clients`` maps to ``tls-auth-clients``; it defaults
    to False here (ElastiCache does not ask for client certificates) although
    Redis itself defaults to yes. ``users`` maps ACL user names to passwords
    (full permissions); ``password`` is the default user's ``requirepass``.
    """

    def __init__(
        self,
        directory: Path,
        *,
        tls: bool = False,
        certs: CertBundle | None = None,
        tls_auth_clients: bool = False,
        password: str | None = None,
        users: Mapping[str, str] | None = None,
        port: int | None = None,
        extra_config: Sequence[str] = (),
        binary: str | None = None,
    ) -> None:
        if tls and certs is None:
            raise ValueError("tls=True needs certs (see tests.support.certs.make_certs)")
        self.directory = Path(directory)
        self.tls = tls
        self.certs = certs
        self.tls_auth_clients = tls_auth_clients
        self.password = password
        self.users: dict[str, str] = dict(users or {})
        self.extra_config = list(extra_config)
        self.binary = binary or find_redis_server()
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self._clients: list[redis.Redis] = []
        self._log_file: IO[bytes] | None = None
        self.log_path = self.directory / "redis.log"
        self.config_path = self.directory / "redis.conf"

    # -- configuration ----------------------------------------------------

    def _config(self) -> str:
        lines = [
            f"bind {LOOPBACK}",
            "daemonize no",
            'logfile ""',
            f"dir {self.directory}",
            'save ""',
            "appendonly no",
            "loglevel notice",
        ]
        if self.tls:
            assert self.certs is not None
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {self.certs.server_cert}",
                f"tls-key-file {self.certs.server_key}",
                f"tls-ca-cert-file {self.certs.ca_cert}",
                f"tls-auth-clients {'yes' if self.tls_auth_clients else 'no'}",
            ]
        else:
            lines.append(f"port {self.port}")
        if self.password is not None:
            lines.append(f"requirepass {self.password}")
        for name, secret in self.users.items():
            lines.append(f"user {name} on >{secret} ~* &* +@all")
        lines += self.extra_config
        return "\n".join(lines) + "\n"

    # -- client side ------------------------------------------------------

    def _password_for(self, username: str | None, password: Any) -> str | None:
        if password is not _UNSET:
            return password  # type: ignore[no-any-return]
        if username is None or username == "default":
            return self.password
        if username not in self.users:
            raise KeyError(f"unknown ACL user {username!r}; known: {sorted(self.users)}")
        return self.users[username]

    def _send_client_cert(self, client_cert: bool | None) -> bool:
        return self.tls_auth_clients if client_cert is None else client_cert

    def client_kwargs(
        self,
        *,
        username: str | None = None,
        password: Any = _UNSET,
        client_cert: bool | None = None,
        db: int = 0,
    ) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis`` / ``redis.asyncio.Redis``.

        ``password`` defaults to the default user's, or the ACL user's when
        ``username`` is given; pass ``None`` to send no AUTH at all.
        ``client_cert`` defaults to whether the server requires one.
        """
        kwargs: dict[str, Any] = {"host": LOOPBACK, "port": self.port, "db": db}
        if username is not None:
            kwargs["username"] = username
        secret = self._password_for(username, password)
        if secret is not None:
            kwargs["password"] = secret
        if self.tls:
            assert self.certs is not None
            kwargs.update(
                ssl=True,
                ssl_ca_certs=str(self.certs.ca_cert),
                ssl_cert_reqs="required",
                ssl_check_hostname=True,
            )
            if self._send_client_cert(client_cert):
                kwargs.update(
                    ssl_certfile=str(self.certs.client_cert),
                    ssl_keyfile=str(self.certs.client_key),
                )
        return kwargs

    def url(
        self,
        *,
        username: str | None = None,
        password: Any = _UNSET,
        client_cert: bool | None = None,
        db: int = 0,
        tls_params: bool = True,
    ) -> str:
        """``redis://`` or ``rediss://`` URL (the form ``COLLAB_REDIS_URL`` takes).

        In TLS mode the query carries ``ssl_ca_certs`` (and ``ssl_certfile`` /
        ``ssl_keyfile`` when a client certificate is sent) unless
        ``tls_params=False`` (to test a client that forgot the CA).
        """
        secret = self._password_for(username, password)
        userinfo = ""
        if username is not None or secret is not None:
            user = urllib.parse.quote(username or "", safe="")
            userinfo = user
            if secret is not None:
                userinfo += ":" + urllib.parse.quote(secret, safe="")
            userinfo += "@"
        scheme = "rediss" if self.tls else "redis"
        url = f"{scheme}://{userinfo}{LOOPBACK}:{self.port}/{db}"
        if self.tls and tls_params:
            assert self.certs is not None
            query = {"ssl_ca_certs": str(self.certs.ca_cert)}
            if self._send_client_cert(client_cert):
                query["ssl_certfile"] = str(self.certs.client_cert)
                query["ssl_keyfile"] = str(self.certs.client_key)
            url += "?" + urllib.parse.urlencode(query)
        return url

    def client(self, **kwargs: Any) -> redis.Redis:
        """A synchronous client; keyword arguments as for :meth:`client_kwargs`
        plus any ``redis.Redis`` option.

        Test defaults: 5 s socket timeouts and no retries (redis-py otherwise
        retries with exponential backoff, turning an expected failure into
        seconds of waiting); pass ``retry=`` to get them back.
        """
        own = {
            k: kwargs.pop(k) for k in ("username", "password", "client_cert", "db") if k in kwargs
        }
        kwargs.setdefault("socket_connect_timeout", 5)
        kwargs.setdefault("socket_timeout", 5)
        kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        client = redis.Redis(**self.client_kwargs(**own), **kwargs)
        self._clients.append(client)  # closed by stop(): no socket outlives the server
        return client

    def async_client(self, **kwargs: Any) -> redis.asyncio.Redis:
        """An asyncio client; arguments and defaults as for :meth:`client`."""
        own = {
            k: kwargs.pop(k) for k in ("username", "password", "client_cert", "db") if k in kwargs
        }
        kwargs.setdefault("socket_connect_timeout", 5)
        kwargs.setdefault("socket_timeout", 5)
        kwargs.setdefault("retry", AsyncRetry(NoBackoff(), 0))
        return redis.asyncio.Redis(**self.client_kwargs(**own), **kwargs)

    # -- lifecycle --------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RedisServerError("redis-server is not started")
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _fail(self, message: str) -> RedisServerError:
        return RedisServerError(
            f"{message}\n--- redis-server log ({self.log_path}) ---\n{self.log_text()}"
        )

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it answers PING (with TLS and AUTH)."""
        if self.running:
            raise RedisServerError(f"redis-server already running (pid {self.pid})")
        self.directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(_BIND_RETRIES):
            self._spawn()
            try:
                self._wait_ready(timeout)
                return
            except BaseException as exc:
                self._terminate_quietly()
                if not isinstance(exc, RedisServerError):
                    raise
                bind_failed = "Address already in use" in self.log_text()
                if self._fixed_port or not bind_failed or attempt == _BIND_RETRIES - 1:
                    raise
                self.port = free_port()  # someone took the port between probe and bind

    def _spawn(self) -> None:
        self.config_path.write_text(self._config())
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            # Keep the terminal's Ctrl-C away from it; teardown stops it.
            start_new_session=True,
        )
        self.paused = False

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            if self.proc.poll() is not None:
                raise self._fail(
                    f"redis-server exited with code {self.proc.returncode} during start-up"
                )
            # One attempt per round (the client default): this loop is the retry.
            client = self.client(socket_connect_timeout=1, socket_timeout=1)
            try:
                if client.ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                last_error = exc
                if isinstance(exc, redis.AuthenticationError):
                    raise self._fail(
                        f"redis-server rejected the configured credentials: {exc}"
                    ) from exc
            finally:
                client.close()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(
                    f"redis-server on port {self.port} did not answer PING within {timeout}s "
                    f"(last error: {last_error!r})"
                )
            # Waiting on the process doubles as the poll interval: an early exit ends it at once.
            try:
                self.proc.wait(timeout=min(0.05, remaining))
            except subprocess.TimeoutExpired:
                pass

    def _terminate_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self, timeout: float = 10.0, *, close_clients: bool = True) -> None:
        """SIGTERM and wait (SIGKILL if it takes longer than ``timeout``); close
        the clients made by :meth:`client` unless ``close_clients`` is false."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.paused:
                self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.paused = False
        self._close_log()
        if close_clients:
            clients, self._clients = self._clients, []
            for client in clients:
                client.close()

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL: the crash case; clients see their sockets reset."""
        if self.proc is None:
            raise RedisServerError("redis-server is not started")
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
        self.paused = False
        self._close_log()

    def pause(self) -> None:
        """SIGSTOP: the server hangs; TCP stays open, nothing is answered."""
        if not self.running:
            raise self._fail("cannot pause: redis-server is not running")
        os.kill(self.pid, signal.SIGSTOP)
        self._wait_stop_state(stopped=True)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if not self.running:
            raise self._fail("cannot resume: redis-server is not running")
        os.kill(self.pid, signal.SIGCONT)
        self._wait_stop_state(stopped=False)
        self.paused = False

    def _wait_stop_state(self, *, stopped: bool) -> None:
        # waitpid reports the job-control transition itself, so no polling:
        # SIGSTOP/SIGCONT cannot be caught or ignored, the report comes promptly.
        assert self.proc is not None
        flags = os.WUNTRACED if stopped else os.WCONTINUED
        _, status = os.waitpid(self.pid, flags)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            # We reaped it ourselves; tell Popen so poll() does not hang on ECHILD.
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            raise self._fail("redis-server exited while being paused/resumed")

    def restart(self, timeout: float = 15.0) -> None:
        """Stop if running, then start again on the same port with the same config
        (clients made by :meth:`client` stay usable: they reconnect)."""
        self.stop(close_clients=False)
        fixed = self._fixed_port
        self._fixed_port = True  # the point of restart is the same address
        try:
            self.start(timeout=timeout)
        finally:
            self._fixed_port = fixed

    async def astart(self, timeout: float = 15.0) -> None:
        await asyncio.to_thread(self.start, timeout)

    async def astop(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.stop, timeout)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    async def arestart(self, timeout: float = 15.0) -> None:
        await asyncio.to_thread(self.restart, timeout)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        mode = "tls" if self.tls else "plain"
        return f"<RedisServer {mode} {LOOPBACK}:{self.port} running={self.running}>"


@contextmanager
def redis_server(directory: Path, **kwargs: Any) -> Iterator[RedisServer]:
    """Start a :class:`RedisServer` (same arguments) and stop it afterwards."""
    server = RedisServer(directory, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
