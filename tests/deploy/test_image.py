"""The real image: built from the Dockerfile with podman (tests/support/image.py)
and run as a container engine would run it (tests/support/container.py): its
own file system, user, environment, working directory, /data volume, port and
HEALTHCHECK, nothing of this checkout's virtualenv.

test_dockerfile.py and test_container_command.py read the Dockerfile; these
tests check what building it actually produced.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..support.container import Sandbox, Volume, container_config
from ..support.image import BuiltImage
from ..support.jsclient import JSClient
from .artifacts import REPO, image
from .imagerun import (
    IMAGE_TIMEOUT,
    REPORT_DIR,
    container,
    default_config,
    exposed_port,
    server,
)
from .serverproc import ServerProcess

pytestmark = [pytest.mark.anyio, IMAGE_TIMEOUT]

UID = GID = 10001
# World-writable sticky scratch directories of the Debian base, writable in
# any container of it: not the image's doing, and nothing persists there.
SCRATCH = {"/tmp", "/var/tmp", "/run/lock"}


@pytest.fixture
def box(built_image: BuiltImage, image_root: Path, tmp_path: Path) -> Iterator[Sandbox]:
    with container(built_image, image_root, tmp_path / "container") as sandbox:
        yield sandbox


def _status_ids(pid: int) -> dict[str, list[str]]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].split() for line in lines}
    return {k: fields[k] for k in ("Uid", "Gid", "Groups")}


async def _serve(box: Sandbox, log: Path) -> ServerProcess:
    proc = server(box, default_config(box.image), log).start()
    await proc.wait_status("/readyz", 200)
    return proc


def test_image_config_is_the_dockerfiles(built_image: BuiltImage) -> None:
    """What podman recorded is what the Dockerfile says (and what the other
    deploy tests read from it)."""
    parsed = image()
    assert built_image.entrypoint + built_image.cmd == parsed.argv
    assert built_image.user == parsed.user == f"{UID}:{GID}"
    assert built_image.workdir == parsed.final.last("WORKDIR")
    assert built_image.volumes == parsed.volumes
    assert [str(exposed_port(built_image))] == parsed.exposed
    assert built_image.config.get("StopSignal") == parsed.stopsignal
    assert built_image.healthcheck["Test"] == ["CMD", *parsed.healthcheck]
    for key, value in parsed.env.items():
        if key != "PATH":
            assert built_image.env[key] == value, key
    assert built_image.env["PATH"].startswith("/opt/venv/bin:")


async def test_runs_as_10001_and_writes_only_to_data(box: Sandbox, tmp_path: Path) -> None:
    proc = await _serve(box, tmp_path / "server.log")
    try:
        assert proc.proc is not None
        ids = _status_ids(proc.proc.pid)
        assert ids["Uid"] == [str(UID)] * 4 and ids["Gid"] == [str(GID)] * 4, ids
        assert ids["Groups"] == [], ids
    finally:
        proc.terminate()
        assert await proc.wait_exit() == 0, proc.output()
    data = next(v for v in box.mounts if v["target"] == "/data")
    store = Path(data["source"]) / "collab.sqlite3"
    assert (store.stat().st_uid, store.stat().st_gid) == (UID, GID)

    config = default_config(box.image)
    probe = box.run(["python", "-c", _WRITE_PROBE], config)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    outside = sorted(
        p
        for p in found["writable"]
        if p != "/data" and not p.startswith("/data/") and p not in SCRATCH
    )
    assert outside == [], f"uid {UID} can write outside /data: {outside}"
    for path in sorted(SCRATCH & set(found["writable"])):
        assert found["sticky"][path], f"{path} is writable but not sticky"
    # Refused by permissions (EACCES), not by a read-only mount: the
    # container layer is writable, as root shows.
    assert set(found["attempts"].values()) == {"EACCES"}, found["attempts"]
    assert found["data"] == "written"
    as_root = box.run(
        ["python", "-c", "open('/opt/venv/root-can-write', 'w').close()"],
        container_config(box.image, user="0"),
    )
    assert as_root.returncode == 0, as_root.stderr


# Run inside the container as the image's user: every path it may write to
# (below a writable directory, nothing more is listed), and real attempts.
_WRITE_PROBE = r"""
import errno, json, os, stat, sysconfig
writable, sticky = [], {}
def check(path):
    if os.access(path, os.W_OK, follow_symlinks=False):
        writable.append(path)
        sticky[path] = bool(os.lstat(path).st_mode & stat.S_ISVTX)
        return True
    return False
check("/")
for top in sorted(os.listdir("/")):
    path = "/" + top
    if top in ("proc", "dev", "sys") or os.path.islink(path):
        continue
    for dirpath, dirnames, filenames in os.walk(path):
        if check(dirpath):
            dirnames[:] = []
            continue
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                check(full)
attempts = {}
for target in ["/probe", "/opt/venv/bin/probe", sysconfig.get_paths()["purelib"] + "/probe",
               "/etc/probe", "/usr/local/bin/probe", "/opt/venv/bin/collab"]:
    try:
        with open(target, "a"):
            pass
        attempts[target] = "written"
    except OSError as exc:
        attempts[target] = errno.errorcode[exc.errno]
with open("/data/probe", "w") as f:
    f.write("ok")
print(json.dumps({"writable": writable, "sticky": sticky, "attempts": attempts,
                  "data": "written"}))
"""


async def test_serve_passes_y_websocket_and_hocuspocus_clients(
    box: Sandbox, tmp_path: Path
) -> None:
    proc = await _serve(box, tmp_path / "server.log")
    try:
        async with JSClient.start(tmp_path) as js:
            room = "image/notes"
            await js.call("connect", handle="a", url=proc.ws_base, room=room)
            await js.call("connect", handle="b", url=proc.ws_base, room=room)
            await js.call(
                "connect_hocuspocus", handle="h", url=f"{proc.ws_base}/hocuspocus", name=room
            )
            await js.call("insert", handle="a", index=0, text="[y-a]")
            await js.call("insert", handle="b", index=0, text="[y-b]")
            await js.call("insert", handle="h", index=0, text="[hp]")
            parts = ["[y-a]", "[y-b]", "[hp]"]
            texts = {
                h: await js.call("wait_text", handle=h, contains=parts, timeout_ms=10000)
                for h in ("a", "b", "h")
            }
            assert len(set(texts.values())) == 1, texts
            await js.call("set_awareness", handle="h", field="user", value={"name": "ada"})
            await js.call(
                "wait_awareness", handle="a", path="user.name", value="ada", timeout_ms=10000
            )
    finally:
        proc.terminate()
        assert await proc.wait_exit() == 0, proc.output()


async def test_documents_survive_a_restart_on_the_same_data_volume(
    built_image: BuiltImage, image_root: Path, tmp_path: Path
) -> None:
    volume = Volume(tmp_path / "collab-data", "/data", named=True)
    room = "image/kept"
    with container(built_image, image_root, tmp_path / "first", volumes=[volume]) as box:
        first = await _serve(box, tmp_path / "first.log")
        try:
            async with JSClient.start(tmp_path) as js:
                await js.call("connect", handle="a", url=first.ws_base, room=room)
                await js.call("insert", handle="a", index=0, text="kept across restarts")
        finally:
            first.terminate()
            code = await first.wait_exit()
        assert code == 0, first.output()
    lines = [line for line in first.output().splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines), lines

    # `docker rm` + `docker run -v collab-data:/data`: a new container layer,
    # the same volume.
    with container(built_image, image_root, tmp_path / "second", volumes=[volume]) as box:
        second = await _serve(box, tmp_path / "second.log")
        try:
            async with JSClient.start(tmp_path) as js:
                await js.call("connect", handle="late", url=second.ws_base, room=room)
                assert await js.call("text", handle="late") == "kept across restarts"
        finally:
            second.terminate()
            assert await second.wait_exit() == 0, second.output()


async def test_healthcheck_from_the_image_config(box: Sandbox, tmp_path: Path) -> None:
    config = default_config(box.image)
    proc = await _serve(box, tmp_path / "server.log")
    try:
        live = box.healthcheck(config)
        assert live.returncode == 0, live.stdout + live.stderr
    finally:
        proc.terminate()
        assert await proc.wait_exit() == 0, proc.output()
    stopped = box.healthcheck(config)
    assert stopped.returncode != 0
    assert "Connection refused" in stopped.stderr, stopped.stderr


# -- contents ------------------------------------------------------------------------

_BIN_DIRS = (
    "usr/bin",
    "usr/sbin",
    "usr/local/bin",
    "usr/local/sbin",
    "opt/venv/bin",
    "bin",
    "sbin",
)
_COMPILERS = (
    "cc",
    "c++",
    "gcc",
    "g++",
    "cpp",
    "clang",
    "clang++",
    "tcc",
    "ld",
    "as",
    "make",
    "rustc",
    "cargo",
    "go",
)


def _files(root: Path) -> Iterator[Path]:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            yield Path(dirpath) / name


def test_no_pip_setuptools_or_wheel(image_root: Path, box: Sandbox) -> None:
    installed = sorted(
        str(p.relative_to(image_root))
        for p in image_root.glob("**/*-packages/*")
        if p.name.split("-")[0].lower()
        in ("pip", "setuptools", "wheel", "_distutils_hack", "pkg_resources")
    )
    assert installed == [], installed
    scripts = sorted(
        f"{d}/{p.name}"
        for d in _BIN_DIRS
        for p in (image_root / d).glob("*")
        if p.name.startswith(("pip", "easy_install", "wheel"))
    )
    assert scripts == [], scripts
    config = default_config(box.image)
    for python in ("python", "python3"):
        result = box.run([python, "-m", "pip", "--version"], config)
        assert result.returncode != 0 and "No module named pip" in result.stderr, result


def test_no_compilers(image_root: Path) -> None:
    found = sorted(
        f"{d}/{p.name}"
        for d in _BIN_DIRS
        for p in (image_root / d).glob("*")
        if p.name in _COMPILERS
        or p.name.startswith(("gcc-", "g++-", "x86_64-linux-gnu-", "aarch64-linux-gnu-", "clang-"))
    )
    assert found == [], found
    assert not (image_root / "usr/lib/gcc").exists()


def test_no_test_files(image_root: Path) -> None:
    # Nothing of this repository but the package itself.
    ours = {}
    for folder in ("tests", "bench"):
        for path in _files(REPO / folder):
            if "node_modules" in path.parts or "__pycache__" in path.parts:
                continue
            if path.stat().st_size > 0:
                ours[hashlib.sha256(path.read_bytes()).hexdigest()] = path
    sizes = {p.stat().st_size for p in ours.values()}
    copied = []
    for path in _files(image_root):
        if path.is_symlink() or not path.is_file() or path.stat().st_size not in sizes:
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in ours:
            copied.append(f"/{path.relative_to(image_root)} = {ours[digest].relative_to(REPO)}")
    assert copied == [], copied
    venv = image_root / "opt" / "venv"
    test_dirs = sorted(
        str(p.relative_to(image_root)) for p in venv.glob("**/") if p.name in ("test", "tests")
    )
    assert test_dirs == [], test_dirs
    assert not list(venv.glob("**/conftest.py"))
    site = next(venv.glob("lib/python*/site-packages"))
    assert (site / "collab").is_dir()
    assert not (site / "bench").exists()


# A PEM private key with a body (libgnutls holds the header as a string).
_PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{64,}")


def _added(image_root: Path, base_root: Path) -> Iterator[Path]:
    """Regular files the build added or changed: not byte-identical to the
    base image's file at the same path (libgnutls' self-test keys are the
    base's business, not ours)."""
    for path in _files(image_root):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(image_root)
        original = base_root / rel
        if (
            original.is_file()
            and not original.is_symlink()
            and original.stat().st_size == path.stat().st_size
            and original.read_bytes() == path.read_bytes()
        ):
            continue
        yield path


def test_no_secrets(image_root: Path, base_root: Path, built_image: BuiltImage) -> None:
    added = list(_added(image_root, base_root))
    assert any(p.name == "collab" and p.parent.name == "bin" for p in added)
    keys = [
        f"/{p.relative_to(image_root)}"
        for p in added
        if p.stat().st_size < 16_000_000 and _PEM_KEY.search(p.read_bytes())
    ]
    assert keys == [], f"private keys in the image: {keys}"
    names = (".git", ".env", ".venv", "node_modules", ".dockerignore", "docker-compose.yml")
    hits = sorted(
        str(p.relative_to(image_root)) for p in image_root.glob("**/*") if p.name in names
    )
    assert hits == [], hits
    # The build-time pip configuration (and its CA bundle) were bind mounts,
    # not layers: the stand-in's empty placeholder, or nothing.
    pip_conf = image_root / "etc" / "pip.conf"
    assert not pip_conf.exists() or pip_conf.read_text() == ""
    words = ("PASSWORD", "SECRET", "TOKEN", "KEY")
    assert [k for k in built_image.env if any(w in k.upper() for w in words)] == []
    mode = (image_root / "data").stat()
    assert (mode.st_uid, mode.st_gid) == (UID, GID) and not mode.st_mode & stat.S_IWOTH


def test_image_size_is_reported(
    built_image: BuiltImage, record_property: Callable[[str, object], None]
) -> None:
    report = json.loads((REPORT_DIR / "report.json").read_text())
    assert report["size_bytes"] == built_image.size > built_image.base.size > 0
    record_property("image_size_bytes", built_image.size)
    record_property("image_base_size_bytes", built_image.base.size)
    print(
        f"collab image: {built_image.size / 1e6:.1f} MB "
        f"({(built_image.size - built_image.base.size) / 1e6:.1f} MB over the base)"
    )
