"""A real PostgreSQL 15 in a temporary data directory, on a free loopback port.

PostgreSQL refuses to run as root, so when the tests run as root (CI, this
container) every server-side command runs as the ``postgres`` OS user through
``runuser`` and the cluster lives in a fresh directory under the system temp
dir owned by that user (pytest's ``tmp_path`` sits below a 0700 directory the
``postgres`` user cannot enter). As a normal user everything runs as that user.

TCP connections from 127.0.0.1 use scram-sha-256 password auth, so the URL the
server under test gets is a realistic one::

    with PostgresServer() as pg:
        pg.url   # postgresql://collab:collab@127.0.0.1:PORT/collab
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from .ports import LOOPBACK, free_port

__all__ = ["PostgresServer", "PostgresServerError", "postgres_server"]

_INSTALL_HINT = "run scripts/install-test-deps.sh (installs Debian's postgresql)"
_DEFAULT_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)
_BIND_RETRIES = 3
_SUPERUSER = "postgres"


class PostgresServerError(RuntimeError):
    """The test PostgreSQL could not be created, started or stopped."""


def find_pg_bin_dir() -> Path:
    """Directory holding ``initdb``/``pg_ctl`` (``$COLLAB_TEST_PG_BIN`` or Debian's PG 15)."""
    candidates = [os.environ["COLLAB_TEST_PG_BIN"]] if os.environ.get("COLLAB_TEST_PG_BIN") else []
    candidates += list(_DEFAULT_BIN_DIRS)
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    raise PostgresServerError(f"PostgreSQL 15 binaries not found in {candidates}; {_INSTALL_HINT}")


class PostgresServer:
    """One PostgreSQL cluster: ``initdb``, ``pg_ctl start``, a role and a database.

    ``base_dir`` is where the cluster directory is created; by default a fresh
    ``tempfile.mkdtemp()`` (required when running as root, see module doc).
    Everything under it is removed by :meth:`stop`.
    """

    def __init__(
        self,
        *,
        user: str = "collab",
        password: str = "collab",
        database: str = "collab",
        base_dir: Path | None = None,
        bin_dir: Path | None = None,
        server_options: Sequence[str] = (),
    ) -> None:
        self.user = user
        self.password = password
        self.database = database
        self.bin_dir = bin_dir or find_pg_bin_dir()
        self.server_options = list(server_options)
        self._base_dir_arg = base_dir
        self.root: Path | None = None
        self.port: int = 0
        self.started = False
        self._as_root = os.geteuid() == 0

    # -- paths --------------------------------------------------------------

    def _path(self, name: str) -> Path:
        if self.root is None:
            raise PostgresServerError("PostgreSQL server not created yet; call start()")
        return self.root / name

    @property
    def data_dir(self) -> Path:
        return self._path("data")

    @property
    def socket_dir(self) -> Path:
        return self._path("sock")

    @property
    def log_path(self) -> Path:
        return self._path("postgres.log")

    @property
    def url(self) -> str:
        """``postgresql://user:password@127.0.0.1:PORT/database`` (for ``COLLAB_STORE_URL``)."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """The URL of another database on this server (percent-encoded parts)."""
        user, password, db = (
            urllib.parse.quote(part, safe="") for part in (self.user, self.password, database)
        )
        return f"postgresql://{user}:{password}@{LOOPBACK}:{self.port}/{db}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (FileNotFoundError, PostgresServerError):
            return ""

    # -- running commands as the right OS user ------------------------------

    def _cmd(self, argv: list[str]) -> list[str]:
        if not self._as_root:
            return argv
        runuser = shutil.which("runuser")
        if runuser is not None:
            return [runuser, "-u", _SUPERUSER, "--", *argv]
        su = shutil.which("su")
        if su is None:
            raise PostgresServerError("running as root but neither runuser nor su is available")
        return [su, _SUPERUSER, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def _run(self, argv: list[str], *, timeout: float, what: str) -> str:
        try:
            done = subprocess.run(
                self._cmd(argv),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=self.root,
            )
        except subprocess.TimeoutExpired as exc:
            raise self._fail(f"{what} did not finish within {timeout}s: {exc}") from exc
        if done.returncode != 0:
            raise self._fail(
                f"{what} failed with code {done.returncode}\n"
                f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
            )
        return done.stdout

    def _fail(self, message: str) -> PostgresServerError:
        log = self.log_text()
        if log:
            message += f"\n--- postgres log ---\n{log}"
        return PostgresServerError(message)

    # -- lifecycle ------------------------------------------------------------

    def _create_root(self) -> None:
        if self._base_dir_arg is not None:
            self._base_dir_arg.mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix="collab-pg-", dir=self._base_dir_arg))
        else:
            root = Path(tempfile.mkdtemp(prefix="collab-pg-"))
        self.root = root
        self.socket_dir.mkdir()
        if self._as_root:
            owner = pwd.getpwnam(_SUPERUSER)
            for path in (root, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            # The postgres user must be able to reach the directory.
            if not _traversable_by_others(root.parent):
                raise PostgresServerError(
                    f"{root.parent} is not traversable by the {_SUPERUSER} user; "
                    "pass another base_dir"
                )

    def start(self, timeout: float = 60.0) -> None:
        """initdb, start on a free port, create the role and the database."""
        if self.started:
            raise PostgresServerError("PostgreSQL already started")
        deadline = time.monotonic() + timeout
        self._create_root()
        pwfile = self._path("pwfile")
        pwfile.write_text(self.password + "\n")
        if self._as_root:
            owner = pwd.getpwnam(_SUPERUSER)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        pwfile.chmod(0o600)
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                _SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=max(1.0, deadline - time.monotonic()),
            what="initdb",
        )
        pwfile.unlink()
        for attempt in range(_BIND_RETRIES):
            self.port = free_port()
            try:
                self._pg_ctl_start(max(1.0, deadline - time.monotonic()))
                break
            except PostgresServerError:
                if "could not bind" not in self.log_text() or attempt == _BIND_RETRIES - 1:
                    raise
        self.started = True
        self._create_database()

    def _pg_ctl_start(self, timeout: float) -> None:
        options = [
            f"-p {self.port}",
            f"-k {self.socket_dir}",
            f"-c listen_addresses={LOOPBACK}",
            # A test cluster: durability buys nothing, speed does.
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=200",
            *self.server_options,
        ]
        wait_seconds = max(1, int(timeout))
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-o",
                " ".join(options),
                "-w",
                "-t",
                str(wait_seconds),
                "start",
            ],
            timeout=timeout + 5,
            what="pg_ctl start",
        )

    def _superuser_conninfo(self, dbname: str = "postgres") -> str:
        # Over the unix socket (trust), as the cluster's superuser.
        return psycopg.conninfo.make_conninfo(
            host=str(self.socket_dir),
            port=self.port,
            user=_SUPERUSER,
            dbname=dbname,
            connect_timeout=10,
        )

    def _create_database(self) -> None:
        from psycopg import sql

        with psycopg.connect(self._superuser_conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.database), sql.Identifier(self.user)
                )
            )

    def create_database(self, name: str) -> str:
        """Another database owned by the test role; returns its URL."""
        from psycopg import sql

        with psycopg.connect(self._superuser_conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(self.user)
                )
            )
        return self.url_for(name)

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A psycopg connection as the test role over TCP (password auth)."""
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(self.url, **kwargs)

    # -- freezing -------------------------------------------------------------

    def processes(self) -> list[int]:
        """The postmaster and every process it forked (backends, workers)."""
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        pids = [postmaster]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                # Field 4 of /proc/PID/stat is the parent; the name (field 2) may hold spaces.
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(entry.name))
        return pids

    def pause(self) -> None:
        """SIGSTOP the whole cluster: TCP stays open, nothing is answered (a
        frozen database, as a hung VM or a stuck disk looks to a client)."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, sig: int) -> None:
        # Signals to processes of another user: as root that is allowed; as
        # the cluster's own user too.
        for pid in self.processes():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass  # a backend that just ended

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the cluster (fast shutdown) and remove its directory."""
        try:
            if self.started:
                with contextlib.suppress(OSError, ValueError):
                    self.resume()  # a paused cluster would never stop
                try:
                    self._run(
                        [
                            str(self.bin_dir / "pg_ctl"),
                            "-D",
                            str(self.data_dir),
                            "-m",
                            "fast",
                            "-w",
                            "-t",
                            str(max(1, int(timeout))),
                            "stop",
                        ],
                        timeout=timeout + 5,
                        what="pg_ctl stop",
                    )
                except PostgresServerError:
                    self._run(
                        [
                            str(self.bin_dir / "pg_ctl"),
                            "-D",
                            str(self.data_dir),
                            "-m",
                            "immediate",
                            "stop",
                        ],
                        timeout=30,
                        what="pg_ctl stop -m immediate",
                    )
                self.started = False
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _traversable_by_others(path: Path) -> bool:
    for part in [path, *path.parents]:
        if not os.stat(part).st_mode & 0o001:
            return False
    return True


@contextmanager
def postgres_server(**kwargs: Any) -> Iterator[PostgresServer]:
    """Start a :class:`PostgresServer` (same arguments) and stop it afterwards."""
    with PostgresServer(**kwargs) as server:
        yield server
