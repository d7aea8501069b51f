#!/usr/bin/env python3
"""The scale-out curve: 1, 2 and 4 collab processes, on one Redis and on a
Redis Cluster (sharded pub/sub), under the same load, in one run.

    .venv/bin/python bench/scaleout.py           # ~6 min on 2 cores
    .venv/bin/python bench/scaleout.py --quick   # smoke test, ~2 min

Not part of ``bench/run.py`` (it is long and needs the test venv: it reuses
tests/support's real Redis Cluster, 3 primaries + 3 replicas with TLS, an
AUTH password and an ACL user). Both Redis set-ups speak TLS with AUTH, as
ElastiCache does. Writes bench/scaleout.json (raw figures) and the results
table of bench/SCALEOUT.md (between its ``results`` markers).

Load: many rooms, 4 clients each (1 writer), client i of room r on instance
(r + i) mod n, so with n > 1 almost every delivery crosses Redis. Pinning:
collab processes and redis-server on CPU 0, the load generator on CPU 1 (a
2-core machine cannot give each process a core: the curve shows the per-
message costs, not a hardware speed-up). Redis CPU is read from the
redis-server processes' /proc/<pid>/stat (utime + stime) around each run,
less the idle rate measured just before it (a cluster's bus and replication
cost CPU with no traffic at all), over every node of the set-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

from harness.servers import SERVER_CPU, free_port, pinned, spawn, stop_process, wait_ready  # noqa: E402

from tests.support.certs import make_certs  # noqa: E402
from tests.support.redis_cluster import RedisCluster  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

LOADGEN = BENCH / "loadgen.mjs"
LOADGEN_CPU = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
FULL = dict(rooms=100, clientsPerRoom=4, writersPerRoom=1, rate=10, edits=60)
IDLE_SAMPLE = 3.0  # s of idle Redis CPU measured before each run (cluster bus, replication)
QUICK = dict(rooms=20, clientsPerRoom=4, writersPerRoom=1, rate=10, edits=20)


def cpu_ms(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total * 1000 / CLK_TCK


def pin(pid: int) -> None:
    """Move a running redis-server to the servers' CPU (when there is taskset)."""
    if pinned(SERVER_CPU, []):
        subprocess.run(
            ["taskset", "-p", "-c", SERVER_CPU, str(pid)], capture_output=True, check=False
        )


def run_case(
    tmp: Path,
    backplane: str,
    n: int,
    env: dict[str, str],
    redis_pids: list[int],
    python: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    procs, urls = [], []
    try:
        for i in range(n):
            port = free_port()
            argv = [python, "-m", "collab", "serve", "--host", "127.0.0.1", "--port", str(port)]
            procs.append(
                spawn(
                    argv,
                    tmp / f"{backplane}-{n}-{i}.log",
                    {**env, "COLLAB_INSTANCE_ID": f"i{i}"},
                    cwd=REPO,
                )
            )
            urls.append(f"ws://127.0.0.1:{port}/")
        for url in urls:
            wait_ready(int(url.rsplit(":", 1)[1].strip("/")), "/readyz", 30)
        cfg = {
            **params,
            "kind": "fanout",
            "proto": "yws",
            "urls": urls,
            "spread": True,
            "serverPids": [p.pid for p in procs],
            "roomPrefix": f"s{backplane[0]}{n}-{secrets.token_hex(3)}",
        }
        idle0 = cpu_ms(redis_pids)
        time.sleep(IDLE_SAMPLE)  # the idle rate: what Redis burns with no traffic at all
        idle_rate = (cpu_ms(redis_pids) - idle0) / IDLE_SAMPLE
        before, started = cpu_ms(redis_pids), time.monotonic()
        out = subprocess.run(
            pinned(LOADGEN_CPU, ["node", str(LOADGEN), "run", json.dumps(cfg)]),
            cwd=BENCH,
            capture_output=True,
            text=True,
            timeout=600,
        )
        wall = time.monotonic() - started
        redis_ms = max(0.0, cpu_ms(redis_pids) - before - idle_rate * wall)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            return {"ok": False, "error": out.stderr[-400:]}
        res: dict[str, Any] = json.loads(lines[-1])
        sent = max(1, int(res.get("edits_sent") or 1))
        deliveries = max(1, int(res.get("deliveries") or 1))
        res.update(
            backplane=backplane,
            instances=n,
            redis_cpu_ms=round(redis_ms, 1),
            redis_idle_ms_per_s=round(idle_rate, 1),
            redis_us_per_edit=round(1000 * redis_ms / sent, 1),
            collab_us_per_delivery=round(
                1000 * float(res.get("server_cpu_ms_edit_phase") or 0) / deliveries, 1
            ),
        )
        return res
    finally:
        for proc in procs:
            stop_process(proc)


TABLE_HEAD = (
    "| backplane | collab processes | delivered updates/s | p50 ms | p99 ms | delivered "
    "| collab CPU µs / delivery | Redis CPU µs / edit | Redis CPU ms (net of idle) |\n"
    "|---|---|---|---|---|---|---|---|---|\n"
)


def table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        if not r.get("ok", True) or "latency_ms" not in r:
            rows.append(
                f"| {r.get('backplane')} | {r.get('instances')} | failed: "
                f"{r.get('error', '')[:80]} | | | | | | |"
            )
            continue
        lat = r["latency_ms"]
        rows.append(
            f"| {r['backplane']} | {r['instances']} | {r['deliveries_per_s']:,} | "
            f"{lat['p50']} | {lat['p99']} | {100 * r['delivered_fraction']:.1f} % | "
            f"{r['collab_us_per_delivery']} | {r['redis_us_per_edit']} | "
            f"{r['redis_cpu_ms']:,} |"
        )
    return TABLE_HEAD + "\n".join(rows) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    ap.add_argument("--instances", default="1,2,4")
    args = ap.parse_args()
    params = QUICK if args.quick else FULL
    counts = [int(x) for x in args.instances.split(",")]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="collab-scaleout-") as name:
        tmp = Path(name)
        certs = make_certs(tmp / "pki")
        password = secrets.token_hex(16)
        single = RedisServer(tmp / "single", tls=True, certs=certs, password=password)
        cluster = RedisCluster(
            tmp / "cluster", certs=certs, password=password, users={"app": password}
        )
        single.start()
        try:
            cluster.start()
            for node in [single, *cluster.nodes]:
                pin(node.pid)
            base = {
                "COLLAB_STORE_URL": "memory://",
                "COLLAB_LOG_LEVEL": "warning",
                "COLLAB_CONNECT_RATE": "0",
                "COLLAB_FRAME_RATE": "0",
            }
            setups = {
                "single": ({**base, "COLLAB_REDIS_URL": single.url()}, [single.pid]),
                "cluster": (
                    {
                        **base,
                        "COLLAB_REDIS_URL": cluster.url(username="app"),
                        "COLLAB_REDIS_CLUSTER": "true",
                    },
                    [n.pid for n in cluster.nodes],
                ),
            }
            for n in counts:
                for backplane, (env, pids) in setups.items():
                    print(f"[scaleout] {backplane} x {n} ...", flush=True)
                    res = run_case(tmp, backplane, n, env, pids, args.python, params)
                    res.setdefault("backplane", backplane)
                    res.setdefault("instances", n)
                    results.append(res)
                    print(table([res]).splitlines()[-1], flush=True)
        finally:
            cluster.stop()
            single.stop()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "params": params,
        "quick": args.quick,
        "load": subprocess.run(
            ["cat", "/proc/loadavg"], capture_output=True, text=True
        ).stdout.strip(),
    }
    (BENCH / "scaleout.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=1) + "\n"
    )
    doc = BENCH / "SCALEOUT.md"
    if doc.exists():
        text = doc.read_text()
        block = (
            f"<!-- results -->\n{meta['date']}, {meta['machine']}, {meta['cpus']} CPUs, "
            f"load average before the run {meta['load']}; {params}\n\n"
            f"{table(results)}<!-- /results -->"
        )
        doc.write_text(
            re.sub(r"<!-- results -->.*?<!-- /results -->", lambda _: block, text, flags=re.S)
        )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
