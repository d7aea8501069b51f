#!/usr/bin/env python3
"""Benchmark collab against other Yjs sync servers, side by side, in one run.

    .venv/bin/python bench/run.py                 # everything, A-J (~18 min on 2 cores)
    .venv/bin/python bench/run.py --quick         # smoke test: small N, 1 repeat
    .venv/bin/python bench/run.py --servers collab,y-websocket --scenarios A,D
    .venv/bin/python bench/run.py --without-redis # all but F (no redis-server needed)

Scenarios (full sizes; --quick uses smaller ones, RESULTS.md states them):
  A  1 room x 50 clients, 5 writers at 20 edits/s, 120 edits each: latency
  B  1 room x 200 clients, 1 writer flat out, 1,000 edits: fan-out throughput
  C  100 rooms x 5 clients, 1 writer per room at 5 edits/s, 30 edits: latency
  D  1,000 idle sockets in 1 room: RSS per socket
  E  120k-op document preloaded, then 50 clients join at once: join time
  F  collab only: cross-instance latency through TLS Redis (needs redis-server)
  G  1 room x 200 clients, 1 writer at 20 edits/s, 60 edits: latency
  H  1 room x 50 clients, 5 writers flat out, 500 edits each: throughput
  I  100 rooms x 5 clients, 1 writer per room flat out, 200 edits each: throughput
  J  1,000 idle sockets, each in its own room: RSS per socket

Writes bench/RESULTS.md (machine info, then a scoreboard of collab's headline
ratios, then each scenario's table and ratios) and bench/results.json
(every run's raw figures and the scoreboard). See bench/README.md for what
each scenario means. Only the standard library is used here; the pycrdt peer
and collab run under the interpreter given by --python (default: the repo's
.venv).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.report import Cell, derive, render, scenario_section
from harness.scenarios import BY_ID, Scenario, default_ids, describe, params, report_kind
from harness.scoreboard import as_json, render_scoreboard, score
from harness.servers import (
    BENCH,
    LOADGEN_CPU,
    PEERS,
    REPO,
    SERVER_CPU,
    SERVERS,
    HarnessError,
    Options,
    Running,
    pinned,
)

LOADGEN = BENCH / "loadgen.mjs"
CACHE = BENCH / ".cache"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_npm() -> None:
    """`npm ci` when node_modules is missing or older than the lockfile."""
    marker = BENCH / "node_modules" / ".package-lock.json"
    lock = BENCH / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    log("installing bench npm dependencies (npm ci)")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH, check=True, timeout=600)


def loadgen(mode: str, cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    argv = pinned(LOADGEN_CPU, ["node", str(LOADGEN), mode, json.dumps(cfg)])
    try:
        proc = subprocess.run(argv, cwd=BENCH, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"load generator killed after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {
            "ok": False,
            "error": f"load generator exit {proc.returncode}: {proc.stderr.strip()[-400:]}",
        }
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def probe(running: Running, proto: str) -> dict[str, Any]:
    cfg = {"proto": proto, "urls": running.urls, "roomPrefix": "probe", "syncTimeoutMs": 5000}
    return loadgen("probe", cfg, 30)


def check_collab(opts: Options) -> dict[str, str]:
    """Which collab configurations can run now; name -> reason if not."""
    missing: dict[str, str] = {}
    for name in ("collab", "collab-hocuspocus"):
        spec = SERVERS[name]
        with tempfile.TemporaryDirectory(prefix="collab-bench-") as tmp:
            try:
                running = spec.start(
                    Path(tmp), Options(opts.python, opts.redis_mode, start_timeout=15)
                )
            except HarnessError as exc:
                missing[name] = "does not start: " + str(exc).splitlines()[0]
                continue
            try:
                res = probe(running, spec.proto)
                if not res.get("ok"):
                    missing[name] = f"no {spec.proto} sync: {res.get('error')}"
            finally:
                running.stop()
    return missing


def run_one(
    spec_name: str, scenario: Scenario, quick: bool, opts: Options, rep: int
) -> dict[str, Any]:
    spec = SERVERS[spec_name]
    p = dict(params(scenario, quick))
    with tempfile.TemporaryDirectory(prefix="collab-bench-") as tmp:
        try:
            running = spec.start(Path(tmp), opts)
        except (HarnessError, OSError, subprocess.SubprocessError) as exc:
            return {"ok": False, "error": f"server start: {exc}"}
        try:
            cfg = {
                **p,
                "kind": scenario.kind,
                "proto": spec.proto,
                "urls": running.urls,
                "serverPids": running.server_pids,
                "roomPrefix": f"{scenario.sid.lower()}{rep}-{secrets.token_hex(3)}",
                "trace": {**p.get("trace", {}), "cacheDir": str(CACHE)},
            }
            result = loadgen("run", cfg, timeout=300)
            if not result.get("ok"):
                result["server_log"] = running.log_tail()
            for proc in running.procs:
                if proc.poll() is not None:
                    result["ok"] = False
                    result["error"] = f"server exited with {proc.returncode} during the run"
                    result["server_log"] = running.log_tail()
            return derive(result)
        finally:
            running.stop()


def machine_meta(args: argparse.Namespace, repeats: int) -> dict[str, Any]:
    def cmd(argv: list[str]) -> str:
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=20, cwd=REPO
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    lock = json.loads((BENCH / "package-lock.json").read_text())["packages"]
    npm = ", ".join(
        f"{k.removeprefix('node_modules/')} {v['version']}"
        for k, v in sorted(lock.items())
        if k.count("node_modules/") == 1
        and k.removeprefix("node_modules/")
        in {
            "yjs",
            "y-protocols",
            "lib0",
            "ws",
            "@hocuspocus/server",
            "hocuspocus-server-3",
            "@y/websocket-server",
        }
    )
    py_pkgs = cmd(
        [
            args.python,
            "-c",
            "import importlib.metadata as m; print(', '.join(f'{p} ' + "
            "m.version(p) for p in ('pycrdt','pycrdt-websocket','uvicorn','websockets')))",
        ]
    )
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "quick": args.quick,
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.platform(),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "node": cmd(["node", "--version"]),
        "python": cmd([args.python, "-c", "import platform; print(platform.python_version())"]),
        "packages": f"{npm}; {py_pkgs}",
        "git": cmd(["git", "log", "-1", "--format=%h %s"]) or "(no commits)",
        "server_cpu": SERVER_CPU,
        "loadgen_cpu": LOADGEN_CPU,
        "repeats": repeats,
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small N, 1 repeat (smoke test)")
    p.add_argument("--servers", help=f"comma list from: {', '.join(SERVERS)}")
    p.add_argument(
        "--scenarios", help="comma list from A-J (default all; all but F with --without-redis)"
    )
    p.add_argument("--repeats", type=int, help="runs per cell (default 3, quick 1)")
    p.add_argument(
        "--without-redis",
        dest="with_redis",
        action="store_false",
        help="skip collab-redis (two collab processes + TLS Redis) and scenario F",
    )
    p.add_argument(
        "--redis-mode",
        choices=["instances", "workers"],
        default="instances",
        help="collab-redis as two processes on two ports, or `--workers 2` on one",
    )
    p.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    p.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    p.add_argument("--json", default=str(BENCH / "results.json"))
    p.add_argument("--max-minutes", type=float, default=35.0, help="stop starting runs after this")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    opts = Options(python=args.python, redis_mode=args.redis_mode)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,000 sockets each side

    default_servers = ["collab", "collab-hocuspocus", *PEERS] + (
        ["collab-redis"] if args.with_redis else []
    )
    servers = args.servers.split(",") if args.servers else default_servers
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        sys.exit(f"unknown server(s): {', '.join(unknown)}")
    sids = args.scenarios.split(",") if args.scenarios else default_ids(args.with_redis)
    if any(s not in BY_ID for s in sids):
        sys.exit(f"unknown scenario in {sids}; choose from {', '.join(BY_ID)}")

    t_start = time.monotonic()
    ensure_npm()
    skipped: dict[str, str] = {}
    wanted_collab = [s for s in servers if s in ("collab", "collab-hocuspocus")]
    if wanted_collab:
        log("checking whether collab serves yet")
        for name, reason in check_collab(opts).items():
            if name in servers:
                skipped[name] = reason
                log(f"skipping {name}: {reason}")
    servers = [s for s in servers if s not in skipped]
    if "E" in sids:
        trace = params(BY_ID["E"], args.quick)["trace"]
        log(f"building/caching the {trace['ops']}-op trace")
        res = loadgen("trace", {"trace": {**trace, "cacheDir": str(CACHE)}}, 300)
        if not res.get("ok"):
            sys.exit(f"trace build failed: {res}")

    meta = machine_meta(args, repeats)
    cells: dict[str, dict[str, Cell]] = {sid: {} for sid in sids}
    deadline = t_start + args.max_minutes * 60
    for rep in range(repeats):
        for sid in sids:
            sc = BY_ID[sid]
            for name in servers:
                if sc.only and name not in sc.only:
                    continue
                if sid != "F" and name == "collab-redis":
                    continue
                cell = cells[sid].setdefault(name, Cell([]))
                if time.monotonic() > deadline:
                    cell.runs.append({"ok": False, "error": "skipped: --max-minutes reached"})
                    continue
                t0 = time.monotonic()
                result = run_one(name, sc, args.quick, opts, rep)
                cell.runs.append(result)
                status = (
                    "ok"
                    if result.get("ok")
                    else f"FAILED: {str(result.get('error')).splitlines()[0]}"
                )
                took = time.monotonic() - t0
                log(f"rep {rep + 1}/{repeats} {sid} {name}: {status} ({took:.1f} s)")

    meta["wall_s"] = time.monotonic() - t_start
    peers = [p for p in PEERS if p in servers]
    sections = [
        scenario_section(
            sid,
            BY_ID[sid].title,
            report_kind(BY_ID[sid], args.quick),
            describe(BY_ID[sid], params(BY_ID[sid], args.quick)),
            cells[sid],
            peers,
            {name: spec.proto for name, spec in SERVERS.items()},
        )
        for sid in sids
        if cells[sid]
    ]
    board = score(cells, servers)
    Path(args.out).write_text(render(meta, sections, skipped, render_scoreboard(board, args.quick)))
    Path(args.json).write_text(
        json.dumps(
            {
                "meta": meta,
                "skipped": skipped,
                "scoreboard": as_json(board),
                "results": {sid: {n: c.runs for n, c in cs.items()} for sid, cs in cells.items()},
            },
            indent=1,
        )
    )
    log(f"wrote {args.out} and {args.json} in {meta['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
