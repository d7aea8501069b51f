#!/usr/bin/env bash
# The README's test command: install everything the tests need, then lint,
# type-check and run the whole suite. Works on a fresh Debian 12 machine with
# Python 3.11 and Node 20 (run as root, or as a user with sudo for apt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.lock
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .

# Debian redis-server, postgresql, docker-compose, openssl; npm ci of the
# pinned JS clients (tests/js) and benchmark peers (bench/).
bash scripts/install-test-deps.sh

echo "== ruff"
.venv/bin/ruff check collab tests bench
.venv/bin/ruff format --check collab tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest "$@"
