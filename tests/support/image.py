"""Build the project's container image with podman, without a Docker engine
and without a container registry.

The Dockerfile's base image (``python:3.11-slim-bookworm``) cannot be pulled
here, so a stand-in with the same name is made once per machine and cached:

1. ``debootstrap --variant=minbase`` a Debian root file system of the same
   release (bookworm), with Debian's Python of the same minor version, from
   the Debian mirror the host's apt uses;
2. shaped like the official image: ``/usr/local/bin/python``, pip, setuptools
   and wheel installed under ``/usr/local`` (so the image can remove them the
   way it would remove the official image's), no ``EXTERNALLY-MANAGED``
   marker, no apt lists, no docs, an empty ``/dev``, the official image's
   ``PATH``, ``LANG`` and ``CMD``;
3. ``podman import``-ed under the base's own name, labelled with the recipe's
   key. A changed recipe, mirror or package list gives another key, and an
   image older than ``COLLAB_TEST_BASE_MAX_AGE_DAYS`` (30) is rebuilt, so a
   stale cache never survives. A base of that name without the label (the
   real image, pulled earlier) is used as it is.

Then the Dockerfile is built unchanged::

    podman build --isolation=chroot --network=host --pull=never --format docker

(``--format docker`` keeps HEALTHCHECK, which the OCI format drops.) pip inside
the build reaches the host's package index through the host's own pip
configuration, bind-mounted for the build's RUN steps only (it never lands in
a layer): network index URLs, trusted hosts, proxy, timeout, and the host's CA
bundle in place of the image's (this machine reaches PyPI through a TLS proxy
whose CA only the host bundle has).

Needs root (debootstrap, podman's storage, image mounts). When podman or
debootstrap is missing, ``scripts/install-test-deps.sh`` is run to install
them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BaseImage",
    "BuiltImage",
    "ImageError",
    "build_image",
    "ensure_base",
    "mounted",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-test-deps.sh"

STAND_IN_LABEL = "org.collab.test.stand-in"
STAND_IN_CREATED_LABEL = "org.collab.test.stand-in.created"
# Bump when the recipe below changes in a way the key does not already see.
_RECIPE_VERSION = 1
# What the official python:3.11-slim-bookworm installs on top of Debian
# (docker-library/python 3.11/slim-bookworm/Dockerfile): ca-certificates,
# netbase, tzdata; pip from ensurepip, setuptools and wheel from PyPI.
_DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates", "netbase", "tzdata")
_PIP_TOOLS = ("pip==24.0", "setuptools==70.1.0", "wheel==0.45.1")
# Debian release -> its python3 minor version.
_DEBIAN_PYTHON = {"bookworm": "3.11"}
_DEFAULT_MIRROR = "http://deb.debian.org/debian"
_OFFICIAL_PATH = "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The image's CA bundle (Debian's ca-certificates), shadowed during the build.
_IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# pip's global configuration file; the stand-in ships it empty so that the
# build-time bind mount lands on an existing file (buildah leaves an empty
# placeholder in the image for a mount target it had to create).
_IMAGE_PIP_CONF = "/etc/pip.conf"

_DEBOOTSTRAP_TIMEOUT = 900
_BUILD_TIMEOUT = 1200


class ImageError(RuntimeError):
    """The base or the image could not be made; the message says which step and why."""


def _log(log: Path | None, text: str) -> None:
    if log is not None:
        with log.open("a", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")


def _run(
    argv: Sequence[str],
    *,
    log: Path | None,
    timeout: float,
    what: str,
    env: dict[str, str] | None = None,
    stdin: Any = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; its output goes to ``log``. Raises ImageError naming ``what``."""
    _log(log, f"$ {' '.join(argv)}")
    started = time.monotonic()
    try:
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=stdin,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ImageError(f"{what}: no result after {timeout}s: {' '.join(argv)}") from exc
    _log(
        log,
        (result.stdout or "")
        + (result.stderr or "")
        + f"[exit {result.returncode} after {time.monotonic() - started:.1f}s]",
    )
    if result.returncode != 0:
        tail = ((result.stdout or "") + (result.stderr or ""))[-6000:]
        raise ImageError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{tail}")
    return result


# -- tools --------------------------------------------------------------------------


def require_root() -> None:
    if os.geteuid() != 0:
        raise ImageError(
            "building and running the image needs root (debootstrap, podman's storage, "
            "image mounts, chroot); run the suite as root, as CI does"
        )


def ensure_tools(log: Path | None = None) -> dict[str, str]:
    """Paths of podman and debootstrap; installs them (install-test-deps.sh) when missing."""
    require_root()
    tools = ("podman", "debootstrap")
    if not all(shutil.which(t) for t in tools):
        missing = [t for t in tools if not shutil.which(t)]
        _log(log, f"missing {missing}: running {INSTALL_SCRIPT}")
        _run(
            ["bash", str(INSTALL_SCRIPT)],
            log=log,
            timeout=1200,
            what=f"installing {', '.join(missing)}",
        )
    found = {t: shutil.which(t) for t in tools}
    absent = [t for t, p in found.items() if p is None]
    if absent:
        raise ImageError(f"{absent} still not on PATH after {INSTALL_SCRIPT}")
    return {t: p for t, p in found.items() if p is not None}


def cache_dir() -> Path:
    configured = os.environ.get("COLLAB_TEST_CACHE")
    path = Path(configured) if configured else Path("/var/cache/collab-test")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder of the stand-in at a time on this machine."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- host configuration -------------------------------------------------------------


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields:
            yield fields


def debian_mirror(suite: str, apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive the host's apt uses for ``suite`` (main), else deb.debian.org."""
    candidates: list[tuple[str, list[str], list[str]]] = []  # (uri, suites, components)
    sources = apt_dir / "sources.list"
    one_line = [sources] if sources.is_file() else []
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        one_line += sorted(parts.glob("*.list"))
        for path in sorted(parts.glob("*.sources")):
            for stanza in _deb822_stanzas(path.read_text(errors="replace")):
                if "deb" not in stanza.get("types", "").split():
                    continue
                if stanza.get("enabled", "yes").lower() == "no":
                    continue
                for uri in stanza.get("uris", "").split():
                    candidates.append(
                        (
                            uri,
                            stanza.get("suites", "").split(),
                            stanza.get("components", "").split(),
                        )
                    )
    for path in one_line:
        for line in path.read_text(errors="replace").splitlines():
            # deb [options] uri suite component...
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 4 and words[0] == "deb":
                candidates.append((words[1], [words[2]], words[3:]))
    for uri, suites, components in candidates:
        if suite in suites and "main" in components and "security" not in uri:
            return uri.rstrip("/")
    return _DEFAULT_MIRROR


def _apt_proxy_env() -> dict[str, str]:
    """apt's configured proxies, as the environment debootstrap's wget reads."""
    apt_config = shutil.which("apt-config")
    if apt_config is None:
        return {}
    result = subprocess.run(
        [apt_config, "shell", "HTTP", "Acquire::http::Proxy", "HTTPS", "Acquire::https::Proxy"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    env = {}
    for name, value in re.findall(r"^(HTTPS?)='([^']*)'$", result.stdout, re.M):
        if value and value.upper() != "DIRECT":
            env[f"{name.lower()}_proxy"] = value
    return env


# Keys of pip's configuration that decide which index pip reaches and how.
_PIP_NETWORK_KEYS = (
    "index-url",
    "extra-index-url",
    "trusted-host",
    "proxy",
    "timeout",
    "retries",
    "cert",
)
_PIP_ALIASES = {"default-timeout": "timeout", "i": "index-url"}


def host_pip_config(python: str = sys.executable) -> dict[str, str]:
    """The host's effective pip settings (config files and PIP_* variables, in
    pip's precedence: global < install < environment), network keys only."""
    result = subprocess.run(
        [python, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise ImageError(f"pip config list failed: {result.stderr}")
    layers: dict[str, dict[str, str]] = {"global": {}, "install": {}, ":env:": {}}
    for line in result.stdout.splitlines():
        match = re.match(r"^([^.=]+)\.([^=]+)=(.*)$", line.strip())
        if not match:
            continue
        section, key, raw = match.groups()
        key = _PIP_ALIASES.get(key, key)
        try:
            value = str(json.loads(raw)) if raw.startswith('"') else raw.strip("'")
        except json.JSONDecodeError:
            value = raw.strip("'\"")
        if section in layers and key in _PIP_NETWORK_KEYS:
            layers[section][key] = value
    merged: dict[str, str] = {}
    for section in ("global", "install", ":env:"):
        merged.update(layers[section])
    if "cert" not in merged:
        for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            if os.environ.get(name):
                merged["cert"] = os.environ[name]
                break
    if "proxy" not in merged:
        for name in ("HTTPS_PROXY", "https_proxy"):
            if os.environ.get(name):
                merged["proxy"] = os.environ[name]
                break
    return merged


@dataclass(frozen=True)
class BuildPipConfig:
    """What the image build's RUN steps get: a pip.conf and the bind mounts behind it."""

    text: str
    mounts: list[tuple[str, str]]  # (host path, path in the build container), read-only
    dropped: list[str]  # host settings that cannot apply inside the build


def build_pip_config(host: dict[str, str]) -> BuildPipConfig:
    """Translate the host's pip settings for the build: network indexes stay,
    local directories (file:// indexes, find-links, constraints) cannot be
    reached from inside the build and are dropped (listed in ``dropped``)."""
    lines = ["[global]"]
    mounts: list[tuple[str, str]] = []
    dropped: list[str] = []

    def network_only(key: str) -> list[str]:
        kept = []
        for url in host.get(key, "").split():
            if url.startswith(("http://", "https://")):
                kept.append(url)
            else:
                dropped.append(f"{key}={url}")
        return kept

    index = network_only("index-url")
    if host.get("index-url") and not index:
        raise ImageError(
            f"the host's pip index-url {host['index-url']!r} is not a network URL; the image "
            "build cannot reach it (set PIP_INDEX_URL to a reachable index)"
        )
    if index:
        lines.append(f"index-url = {index[0]}")
    extra = network_only("extra-index-url")
    if extra:
        lines.append("extra-index-url = " + " ".join(extra))
    for key in ("trusted-host", "proxy", "timeout", "retries"):
        if host.get(key):
            lines.append(f"{key} = {host[key]}")
    cert = host.get("cert")
    if cert:
        if not Path(cert).is_file():
            raise ImageError(f"the host's pip cert {cert!r} is not a file")
        mounts.append((str(Path(cert).resolve()), _IMAGE_CA_BUNDLE))
        lines.append(f"cert = {_IMAGE_CA_BUNDLE}")
    return BuildPipConfig("\n".join(lines) + "\n", mounts, dropped)


# -- the stand-in base --------------------------------------------------------------


@dataclass(frozen=True)
class StandInRecipe:
    ref: str
    suite: str
    python: str
    mirror: str
    packages: tuple[str, ...] = _DEBIAN_PACKAGES
    pip_tools: tuple[str, ...] = _PIP_TOOLS

    @property
    def key(self) -> str:
        blob = json.dumps(
            {
                "recipe": _RECIPE_VERSION,
                "ref": self.ref,
                "suite": self.suite,
                "python": self.python,
                "mirror": self.mirror,
                "packages": self.packages,
                "pip": self.pip_tools,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def normalize_ref(ref: str) -> str:
    """``python:3.11`` -> ``docker.io/library/python:3.11`` (podman's stored name)."""
    name = ref.split("/")
    if len(name) == 1:
        return f"docker.io/library/{ref}"
    if "." not in name[0] and ":" not in name[0] and name[0] != "localhost":
        return f"docker.io/{ref}"
    return ref


def stand_in_recipe(ref: str) -> StandInRecipe:
    """The stand-in for an official ``python:X.Y-slim-<debian release>`` tag."""
    full = normalize_ref(ref)
    match = re.fullmatch(r"docker\.io/library/python:(\d+\.\d+)-slim-(\w+)", full)
    if not match:
        raise ImageError(
            f"no stand-in recipe for base image {ref!r} (only python:X.Y-slim-<debian release>)"
        )
    python, suite = match.groups()
    if _DEBIAN_PYTHON.get(suite) != python:
        raise ImageError(
            f"{ref!r} needs Python {python} on Debian {suite}; the stand-in uses Debian's own "
            f"python3 ({_DEBIAN_PYTHON.get(suite, 'unknown')} on {suite}) and cannot stand in"
        )
    return StandInRecipe(full, suite, python, debian_mirror(suite))


@dataclass(frozen=True)
class BaseImage:
    ref: str
    image_id: str
    size: int
    stand_in: bool
    key: str | None
    built_now: bool
    seconds: float


def _inspect(podman: str, ref: str) -> dict[str, Any] | None:
    result = subprocess.run(
        [podman, "image", "inspect", ref], capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        return None
    data = json.loads(result.stdout)
    return data[0] if data else None


def _make_rootfs(
    recipe: StandInRecipe, work: Path, tools: dict[str, str], log: Path | None
) -> tuple[Path, str]:
    """debootstrap + the official image's shape. Returns (rootfs, python version)."""
    rootfs = work / "rootfs"
    env = {**os.environ, **_apt_proxy_env()}
    _run(
        [
            tools["debootstrap"],
            "--variant=minbase",
            f"--include={','.join(recipe.packages)}",
            recipe.suite,
            str(rootfs),
            recipe.mirror,
        ],
        log=log,
        timeout=_DEBOOTSTRAP_TIMEOUT,
        what=f"debootstrap {recipe.suite} from {recipe.mirror}",
        env=env,
    )

    # What the official image does not have, or has empty.
    for pattern in (
        "var/cache/apt/archives/*.deb",
        "var/lib/apt/lists/*",
        "usr/share/doc/*",
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/locale/*",
        "dev/*",
        "etc/hostname",
        "etc/resolv.conf",
        "var/log/*.log",
        "var/log/apt/*",
        f"usr/lib/python{recipe.python}/EXTERNALLY-MANAGED",
    ):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    # pip, setuptools and wheel under /usr/local, as the official image has them.
    wheels = rootfs / "tmp" / "stand-in-wheels"
    wheels.mkdir(parents=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(wheels),
            *recipe.pip_tools,
        ],
        log=log,
        timeout=600,
        what="downloading pip, setuptools and wheel for the stand-in",
    )
    files = sorted(p.name for p in wheels.glob("*.whl"))
    pip_wheel = next(f for f in files if f.startswith("pip-"))
    _run(
        [
            "chroot",
            str(rootfs),
            "/usr/bin/python3",
            f"/tmp/stand-in-wheels/{pip_wheel}/pip",
            "install",
            "--no-index",
            "--no-cache-dir",
            "--no-compile",
            "--disable-pip-version-check",
            "--root-user-action=ignore",
            *[f"/tmp/stand-in-wheels/{f}" for f in files],
        ],
        log=log,
        timeout=300,
        what="installing pip into the stand-in's /usr/local",
    )
    shutil.rmtree(wheels)
    (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")
    (rootfs / _IMAGE_PIP_CONF.lstrip("/")).write_text("")
    version = _run(
        [
            "chroot",
            str(rootfs),
            "/usr/local/bin/python",
            "-c",
            "import platform; print(platform.python_version())",
        ],
        log=log,
        timeout=60,
        what="the stand-in's python",
    ).stdout.strip()
    if not version.startswith(recipe.python + "."):
        raise ImageError(f"the stand-in's python is {version}, the base needs {recipe.python}")
    return rootfs, version


def ensure_base(ref: str, log: Path | None = None) -> BaseImage:
    """The base image ``ref`` in podman's storage: the real one if present,
    else the cached stand-in, else a new stand-in (about a minute)."""
    tools = ensure_tools(log)
    podman = tools["podman"]
    recipe = stand_in_recipe(ref)
    max_age = float(os.environ.get("COLLAB_TEST_BASE_MAX_AGE_DAYS", "30")) * 86400
    started = time.monotonic()
    cache = cache_dir()
    with _locked(cache / "stand-in.lock"):
        found = _inspect(podman, recipe.ref)
        previous = None
        if found is not None:
            labels = found.get("Labels") or {}
            if STAND_IN_LABEL not in labels:
                _log(log, f"{recipe.ref} is present and is not a stand-in: using it as is")
                return BaseImage(
                    recipe.ref, found["Id"], int(found["Size"]), False, None, False, 0.0
                )
            created = float(labels.get(STAND_IN_CREATED_LABEL, "0"))
            if labels[STAND_IN_LABEL] == recipe.key and time.time() - created < max_age:
                _log(log, f"stand-in {recipe.ref} (key {recipe.key}) is cached")
                return BaseImage(
                    recipe.ref, found["Id"], int(found["Size"]), True, recipe.key, False, 0.0
                )
            _log(
                log,
                f"stand-in {recipe.ref} is stale (key {labels[STAND_IN_LABEL]}, "
                f"created {created:.0f}): rebuilding",
            )
            previous = found["Id"]

        with tempfile.TemporaryDirectory(dir=cache, prefix="stand-in-") as tmp:
            rootfs, version = _make_rootfs(recipe, Path(tmp), tools, log)
            changes = [
                f"ENV PATH={_OFFICIAL_PATH}",
                "ENV LANG=C.UTF-8",
                f"ENV PYTHON_VERSION={version}",
                'CMD ["python3"]',
                f"LABEL {STAND_IN_LABEL}={recipe.key}",
                f"LABEL {STAND_IN_CREATED_LABEL}={time.time():.0f}",
                f"LABEL org.collab.test.stand-in.recipe=debootstrap-{recipe.suite}-minbase",
            ]
            argv = [podman, "import", "--quiet"]
            for change in changes:
                argv += ["--change", change]
            tar = subprocess.Popen(
                ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
            )
            try:
                _run(
                    [*argv, "-", recipe.ref],
                    log=log,
                    timeout=600,
                    stdin=tar.stdout,
                    what=f"podman import of the stand-in as {recipe.ref}",
                )
            finally:
                assert tar.stdout is not None
                tar.stdout.close()
                tar.wait(60)
            if tar.returncode != 0:
                raise ImageError(f"tar of the stand-in rootfs exited {tar.returncode}")
        found = _inspect(podman, recipe.ref)
        assert found is not None
        if previous is not None and previous != found["Id"]:
            # The stale stand-in, unless old builds still sit on it.
            subprocess.run([podman, "rmi", previous], capture_output=True, check=False, timeout=120)
        return BaseImage(
            recipe.ref,
            found["Id"],
            int(found["Size"]),
            True,
            recipe.key,
            True,
            time.monotonic() - started,
        )


# -- the project's image ------------------------------------------------------------


@dataclass(frozen=True)
class BuiltImage:
    """An image built from the Dockerfile, with its config as podman reports it."""

    tag: str
    image_id: str
    size: int
    base: BaseImage
    inspect: dict[str, Any]
    seconds: float
    log_path: Path
    pip_dropped: list[str] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.inspect.get("Config") or {})

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config.get("Env") or [])

    @property
    def entrypoint(self) -> list[str]:
        return list(self.config.get("Entrypoint") or [])

    @property
    def cmd(self) -> list[str]:
        return list(self.config.get("Cmd") or [])

    @property
    def user(self) -> str:
        return str(self.config.get("User") or "")

    @property
    def workdir(self) -> str:
        return str(self.config.get("WorkingDir") or "/")

    @property
    def volumes(self) -> list[str]:
        return sorted(self.config.get("Volumes") or {})

    @property
    def healthcheck(self) -> dict[str, Any]:
        return dict(self.inspect.get("Healthcheck") or self.config.get("Healthcheck") or {})

    def report(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "id": self.image_id,
            "size_bytes": self.size,
            "size_mb": round(self.size / 1e6, 1),
            "base": self.base.ref,
            "base_is_stand_in": self.base.stand_in,
            "base_size_bytes": self.base.size,
            "added_by_dockerfile_bytes": self.size - self.base.size,
            "base_built_now": self.base.built_now,
            "base_seconds": round(self.base.seconds, 1),
            "build_seconds": round(self.seconds, 1),
            "pip_settings_not_applied_in_build": self.pip_dropped,
        }


def build_image(
    context: Path, tag: str, log: Path, *, base_ref: str, dockerfile: str = "Dockerfile"
) -> BuiltImage:
    """``podman build`` of ``context`` (its Dockerfile unchanged) as ``tag``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    base = ensure_base(base_ref, log)
    podman = ensure_tools(log)["podman"]
    pip = build_pip_config(host_pip_config())
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="collab-build-") as tmp:
        pip_conf = Path(tmp) / "pip.conf"
        pip_conf.write_text(pip.text)
        pip_conf.chmod(0o644)
        _log(
            log,
            f"build-time pip configuration (not in any layer):\n{pip.text}"
            f"not applicable in the build: {pip.dropped}",
        )
        argv = [
            podman,
            "build",
            "--isolation=chroot",
            "--network=host",
            "--pull=never",
            "--format",
            "docker",
            "--layers",
            "--label",
            "org.collab.test.image=1",
            "-v",
            f"{pip_conf}:{_IMAGE_PIP_CONF}:ro",
        ]
        for source, target in pip.mounts:
            argv += ["-v", f"{source}:{target}:ro"]
        argv += ["-f", str(context / dockerfile), "-t", tag, str(context)]
        _run(argv, log=log, timeout=_BUILD_TIMEOUT, what=f"podman build of {context}")
    found = _inspect(podman, tag)
    if found is None:
        raise ImageError(f"podman build succeeded but {tag} is not in the storage")
    return BuiltImage(
        tag,
        found["Id"],
        int(found["Size"]),
        base,
        found,
        time.monotonic() - started,
        log,
        pip.dropped,
    )


@contextlib.contextmanager
def mounted(tag: str) -> Iterator[Path]:
    """``podman image mount``: the image's file system, read-only."""
    podman = ensure_tools()["podman"]
    path = _run(
        [podman, "image", "mount", tag], log=None, timeout=120, what=f"podman image mount {tag}"
    ).stdout.strip()
    try:
        yield Path(path)
    finally:
        subprocess.run(
            [podman, "image", "unmount", tag], capture_output=True, check=False, timeout=120
        )


def remove_image(tag: str, keep_as: str | None = None) -> None:
    """Drop this session's tag (the layers stay as the build cache); ``keep_as``
    re-tags the image first, so the latest build stays inspectable."""
    podman = shutil.which("podman")
    if podman is None:
        return
    if keep_as:
        subprocess.run([podman, "tag", tag, keep_as], capture_output=True, check=False, timeout=60)
    # With no name, untag would drop every name of the image, keep_as included.
    subprocess.run([podman, "untag", tag, tag], capture_output=True, check=False, timeout=60)
    # Old builds of this suite (untagged, more than a week old) go; nothing else.
    subprocess.run(
        [
            podman,
            "image",
            "prune",
            "--force",
            "--filter",
            "until=168h",
            "--filter",
            "label=org.collab.test.image=1",
        ],
        capture_output=True,
        check=False,
        timeout=300,
    )
