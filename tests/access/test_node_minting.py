"""Tokens minted in Node (tests/js/mint.mjs, node:crypto only) pass collab's
verifier: the helper the JS-client tests and the README's Node example use."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from collab.access import TokenProblem, TokenRejected, TokenVerifier

from ..support.jsclient import JS_DIR, JSClient
from ..support.tokens import TEST_SECRET

pytestmark = pytest.mark.anyio

VERIFIER = TokenVerifier.from_secret(TEST_SECRET)


def _node_cli(
    claims: str, *extra: str, secret: str = TEST_SECRET
) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node is not None, "node not on PATH: scripts/install-test-deps.sh checks for it"
    env = {**os.environ, "COLLAB_JWT_SECRET": secret}
    return subprocess.run(
        [node, str(JS_DIR / "mint.mjs"), claims, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_cli_mints_a_token_collab_accepts() -> None:
    result = _node_cli('{"rooms": ["team/*"], "readonly": true, "sub": "bot"}')
    assert result.returncode == 0, result.stderr
    grant = VERIFIER.authorize(result.stdout.strip(), "team/notes")
    assert grant.readonly is True and grant.subject == "bot"
    assert grant.seconds_left() == pytest.approx(300 + 5, abs=10)


def test_cli_expired_token_is_refused() -> None:
    result = _node_cli('{"rooms": ["a"]}', "-60")
    assert result.returncode == 0, result.stderr
    with pytest.raises(TokenRejected) as info:
        VERIFIER.verify(result.stdout.strip())
    assert info.value.problem is TokenProblem.EXPIRED


def test_cli_without_secret_fails() -> None:
    result = _node_cli("{}", secret="")
    assert result.returncode == 2 and "COLLAB_JWT_SECRET" in result.stderr


async def test_client_driver_mints_too(tmp_path: Path) -> None:
    async with JSClient.start(tmp_path) as js:
        token = await js.call(
            "mint", secret=TEST_SECRET, claims={"rooms": ["docs/**"]}, expires_in_s=120
        )
        wrong = await js.call(
            "mint",
            secret="not-the-secret-but-long-enough-0123456789",
            claims={"rooms": ["docs/**"]},
        )
    assert VERIFIER.authorize(token, "docs/a/b").allows("docs/x")
    with pytest.raises(TokenRejected) as info:
        VERIFIER.verify(wrong)
    assert info.value.problem is TokenProblem.BAD_SIGNATURE
