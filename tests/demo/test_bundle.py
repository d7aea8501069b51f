"""The committed bundle (collab/demo/static) is what demo/ builds today.

`pip install .` users get the demo without Node because the bundle is
committed; this test keeps it honest: it rebuilds from demo/src with the
pinned esbuild (demo/package-lock.json, installed by `npm ci` in
scripts/install-test-deps.sh) into a temporary directory and compares byte
for byte. After changing demo/src: `node demo/build.mjs`, commit the result.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from collab.demo import STATIC_DIR

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo"
_HINT = "run scripts/install-test-deps.sh (runs `npm ci` in demo/)"


def test_committed_bundle_matches_the_sources(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, f"node not on PATH; {_HINT}"
    assert (DEMO / "node_modules" / "esbuild").is_dir(), f"demo/node_modules missing; {_HINT}"
    out = tmp_path / "static"
    done = subprocess.run(
        [node, str(DEMO / "build.mjs"), "--outdir", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    built = sorted(p.name for p in out.iterdir())
    assert built == sorted(p.name for p in STATIC_DIR.iterdir())
    stale = [
        name for name in built if (out / name).read_bytes() != (STATIC_DIR / name).read_bytes()
    ]
    assert not stale, f"{stale} differ from demo/src: run `node demo/build.mjs` and commit"


def test_npm_packages_are_pinned_exactly() -> None:
    package = json.loads((DEMO / "package.json").read_text())
    lock = json.loads((DEMO / "package-lock.json").read_text())
    for name, version in package["dependencies"].items():
        assert version[0].isdigit(), f"{name}@{version} is a range, not a pin"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name
    # Where demo/ and tests/js share a package, they pin the same version.
    shared = json.loads((REPO / "tests" / "js" / "package.json").read_text())["dependencies"]
    for name in set(shared) & set(package["dependencies"]):
        assert shared[name] == package["dependencies"][name], name
