"""`collab serve` with a misconfiguration: one line naming the variable, exit 2.

Real processes, as an operator would start them; none of these may print a
traceback or start listening.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CASES = [
    ({"COLLAB_STORE_URL": "bogus://x"}, "COLLAB_STORE_URL"),
    ({"COLLAB_REDIS_URL": "http://cache:6379"}, "COLLAB_REDIS_URL"),
    ({"COLLAB_REDIS_URL": "redis://cache:notaport"}, "COLLAB_REDIS_URL"),
    ({"COLLAB_HOOKS": "no_colon_here"}, "COLLAB_HOOKS"),
    ({"COLLAB_HOOKS": "tests.core.no_such_module:hooks"}, "COLLAB_HOOKS"),
    ({"COLLAB_HOOKS": "tests.core.hooks_fixture:missing"}, "COLLAB_HOOKS"),
    ({"COLLAB_REDIS_SOCKET_TIMEOUT": "soon"}, "COLLAB_REDIS_SOCKET_TIMEOUT"),
    ({"COLLAB_REDIS_SSL_CERTFILE": "/c.pem"}, "COLLAB_REDIS_SSL_KEYFILE"),
    ({"COLLAB_FLUSH_DEBOUNCE": "-"}, "COLLAB_FLUSH_DEBOUNCE"),
]


@pytest.mark.parametrize(("env", "variable"), CASES)
def test_a_misconfiguration_is_one_line_naming_the_variable(
    env: dict[str, str], variable: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "collab", "serve", "--port", "0"],
        env={**os.environ, "COLLAB_STORE_URL": "memory://", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("collab: configuration error: ") and variable in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_bad_flag_value_names_the_flag() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "collab", "serve", "--redis-backoff-cap", "lots"],
        env={**os.environ, "COLLAB_STORE_URL": "memory://"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "collab: configuration error: --redis-backoff-cap='lots' is not a valid float"
    )
