#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian 12 box.
#
# Idempotent and non-interactive:
#   - apt packages (redis-server, postgresql, docker-compose, openssl, nginx,
#     and podman + debootstrap, which build and unpack the container image
#     in tests/deploy/test_image.py) are installed only if missing, and
#     `apt-get update` runs only then;
#   - the system services those packages ship are NOT left running: the tests
#     start their own redis-server / postgres on free loopback ports, and a
#     system instance on 6379/5432 would only hide a misconfigured test;
#   - `npm ci` installs the pinned Node peers of tests/js, the demo's build
#     tools (demo/: the bundle check rebuilds it), and bench/ when it has a
#     lock file;
#   - Debian's chromium is the browser of tests/browser (Playwright drives it
#     by path: no `playwright install`, no browser download).
# Run as root, or as a user with sudo. Fails loudly (non-zero) on any error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APT_PACKAGES=(redis-server postgresql docker-compose openssl nginx-light chromium fonts-dejavu-core
              podman debootstrap debian-archive-keyring curl)
NODE_MIN_MAJOR=20

log() { printf '[install-test-deps] %s\n' "$*" >&2; }
die() { printf '[install-test-deps] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    SUDO=()
fi

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! is_installed "$pkg"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    if [[ "$(id -u)" -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        die "missing apt packages: ${missing[*]}; run this script as root or install sudo"
    fi
    log "installing apt packages: ${missing[*]}"
    # Keep the packages' postinst from starting their daemons (the standard
    # Debian mechanism for containers). Only if no policy is in place already.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        created_policy=1
    fi
    remove_policy() {
        if ((created_policy)); then "${SUDO[@]}" rm -f "$policy"; fi
    }
    trap 'remove_policy' EXIT
    # needrestart (if present) would otherwise ask about restarting services.
    apt_env=(env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1)
    "${SUDO[@]}" "${apt_env[@]}" apt-get update
    "${SUDO[@]}" "${apt_env[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
    remove_policy
    trap - EXIT
    # In case a policy we did not own let them start anyway.
    for svc in redis-server postgresql nginx; do
        "${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true
        if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
            "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
        fi
    done
else
    log "apt packages present: ${APT_PACKAGES[*]}"
fi

# Loud check of what the test helpers will actually execute.
command -v redis-server >/dev/null || die "redis-server not on PATH after install"
redis-server --version >&2
PG_BIN="/usr/lib/postgresql/15/bin"
[[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] || die "PostgreSQL 15 binaries not found in $PG_BIN"
command -v openssl >/dev/null || die "openssl not on PATH after install"
command -v chromium >/dev/null || die "chromium not on PATH after install"
chromium --version >&2
command -v podman >/dev/null || die "podman not on PATH after install"
command -v debootstrap >/dev/null || die "debootstrap not on PATH after install"
podman --version >&2

# Node is not installed from apt: Debian 12 ships Node 18; the peers need 20+.
command -v node >/dev/null 2>&1 || die "node not found; install Node.js >= $NODE_MIN_MAJOR (e.g. from nodejs.org or NodeSource)"
command -v npm >/dev/null 2>&1 || die "npm not found; install Node.js >= $NODE_MIN_MAJOR with npm"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= NODE_MIN_MAJOR)) || die "node $(node --version) is too old; need >= $NODE_MIN_MAJOR"

npm_ci() {
    local dir="$1"
    [[ -f "$dir/package-lock.json" ]] || die "$dir/package-lock.json missing; it must be committed"
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

npm_ci "$ROOT/tests/js"
npm_ci "$ROOT/demo"
if [[ -f "$ROOT/bench/package-lock.json" ]]; then
    npm_ci "$ROOT/bench"
fi

log "done"
