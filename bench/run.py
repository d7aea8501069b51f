#!/usr/bin/env python3
"""Benchmark collab against other Yjs sync servers, side by side, in one run.

    .venv/bin/python bench/run.py                 # everything, A-F (~11 min on 2 cores)
    .venv/bin/python bench/run.py --quick         # smoke test: small N, 1 repeat
    .venv/bin/python bench/run.py --servers collab,y-websocket --scenarios A,D
    .venv/bin/python bench/run.py --without-redis # A-E only (no redis-server needed)

Writes bench/RESULTS.md (tables, ratios, machine info) and bench/results.json
(every run's raw figures). See bench/README.md for what each scenario means.
Only the standard library is used here; the pycrdt peer and collab run under
the interpreter given by --python (default: the repo's .venv).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.report import Cell, derive, render, scenario_section
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


@dataclass(frozen=True)
class Scenario:
    sid: str
    title: str
    kind: str  # loadgen kind: fanout | idle | largedoc
    desc: str
    full: dict[str, Any]
    quick: dict[str, Any]
    only: tuple[str, ...] = ()  # restrict to these servers (F)


SCENARIOS = [
    Scenario(
        "A",
        "One busy room",
        "fanout",
        "Latency = a writer's send → each other client's receipt, under a steady load.",
        dict(rooms=1, clientsPerRoom=50, writersPerRoom=5, rate=20, edits=120, awareness=True),
        dict(rooms=1, clientsPerRoom=20, writersPerRoom=3, rate=20, edits=30, awareness=True),
    ),
    Scenario(
        "B",
        "Broadcast burst",
        "fanout",
        "The writer sends without pacing: fan-out throughput, and the latency of a backlog.",
        dict(
            rooms=1,
            clientsPerRoom=200,
            writersPerRoom=1,
            rate=0,
            edits=1000,
            awareness=True,
            drainTimeoutMs=30000,
        ),
        dict(
            rooms=1,
            clientsPerRoom=50,
            writersPerRoom=1,
            rate=0,
            edits=500,
            awareness=True,
            drainTimeoutMs=15000,
        ),
    ),
    Scenario(
        "C",
        "Many small rooms",
        "fanout",
        "Per-room overhead: many rooms, little traffic in each.",
        dict(rooms=100, clientsPerRoom=5, writersPerRoom=1, rate=5, edits=30, awareness=True),
        dict(rooms=20, clientsPerRoom=5, writersPerRoom=1, rate=5, edits=10, awareness=True),
    ),
    Scenario(
        "D",
        "Idle connections",
        "idle",
        "Memory per connection: server RSS (whole process tree) before and after, "
        "divided by the number of new connections.",
        dict(clients=1000),
        dict(clients=200),
    ),
    Scenario(
        "E",
        "Large document, thundering herd",
        "largedoc",
        "The loader stays connected (the peers have no store and would drop the "
        "document); a fresh client polls until it sees the whole text (preload). "
        "Then all joiners connect at once; time until every one has its step2.",
        dict(joiners=50, trace=dict(ops=120000, seed=7)),
        dict(joiners=20, trace=dict(ops=30000, seed=7)),
    ),
    Scenario(
        "F",
        "Cross-instance latency through TLS Redis",
        "fanout",
        "collab only. collab-redis: writers on one process, readers on the other, so "
        "every delivery crosses TLS Redis (AUTH, CA-verified). collab: the same load "
        "on one process, as the baseline.",
        dict(rooms=1, clientsPerRoom=20, writersPerRoom=2, rate=20, edits=120, split=True),
        dict(rooms=1, clientsPerRoom=10, writersPerRoom=2, rate=20, edits=30, split=True),
        only=("collab-redis", "collab"),
    ),
]


def describe(sc: Scenario, p: dict[str, Any]) -> str:
    """The parameters actually used, in words, followed by the purpose."""
    if sc.kind == "fanout":
        pace = f"{p['rate']} edits/s each" if p["rate"] else "flat out"
        rooms = "1 room" if p["rooms"] == 1 else f"{p['rooms']} rooms"
        text = (
            f"{rooms} x {p['clientsPerRoom']} clients, {p['writersPerRoom']} writer(s) per room "
            f"at {pace}, {p['edits']} edits per writer"
        )
        text += "; every client sets awareness on join." if p.get("awareness") else "."
    elif sc.kind == "idle":
        text = f"{p['clients']:,} idle clients in one room (no awareness)."
    else:
        text = (
            f"A deterministic {p['trace']['ops']:,}-operation editing trace (3 authors: typing, "
            f"backspaces, jumps, occasional merges) pre-loaded by one client; then "
            f"{p['joiners']} clients join at once."
        )
    return f"{text} {sc.desc}"


BY_ID = {s.sid: s for s in SCENARIOS}


def report_kind(sc: Scenario, quick: bool) -> str:
    params = sc.quick if quick else sc.full
    return "burst" if sc.kind == "fanout" and params["rate"] == 0 else sc.kind


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
    params = dict(scenario.quick if quick else scenario.full)
    with tempfile.TemporaryDirectory(prefix="collab-bench-") as tmp:
        try:
            running = spec.start(Path(tmp), opts)
        except (HarnessError, OSError, subprocess.SubprocessError) as exc:
            return {"ok": False, "error": f"server start: {exc}"}
        try:
            cfg = {
                **params,
                "kind": scenario.kind,
                "proto": spec.proto,
                "urls": running.urls,
                "serverPids": running.server_pids,
                "roomPrefix": f"{scenario.sid.lower()}{rep}-{secrets.token_hex(3)}",
                "trace": {**params.get("trace", {}), "cacheDir": str(CACHE)},
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
        "--scenarios", help="comma list from A-F (default all; A-E with --without-redis)"
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
    p.add_argument("--max-minutes", type=float, default=25.0, help="stop starting runs after this")
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
    sids = (
        args.scenarios.split(",")
        if args.scenarios
        else ["A", "B", "C", "D", "E"] + (["F"] if args.with_redis else [])
    )
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
        trace = (BY_ID["E"].quick if args.quick else BY_ID["E"].full)["trace"]
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
            describe(BY_ID[sid], BY_ID[sid].quick if args.quick else BY_ID[sid].full),
            cells[sid],
            peers,
            {name: spec.proto for name, spec in SERVERS.items()},
        )
        for sid in sids
        if cells[sid]
    ]
    Path(args.out).write_text(render(meta, sections, skipped))
    Path(args.json).write_text(
        json.dumps(
            {
                "meta": meta,
                "skipped": skipped,
                "results": {sid: {n: c.runs for n, c in cs.items()} for sid, cs in cells.items()},
            },
            indent=1,
        )
    )
    log(f"wrote {args.out} and {args.json} in {meta['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
