"""Aggregate repeated runs (median) and write RESULTS.md.

Ratios are always collab ÷ other. Each metric says which way is better, and
the table spells out "better"/"worse" so no one has to remember the sign.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

# (key path in the load generator's JSON, label, unit, lower_is_better)
Metric = tuple[str, str, str, bool]

FANOUT_METRICS: list[Metric] = [
    ("connect_sync_ms", "connect+sync", "ms", True),
    ("latency_ms.p50", "latency p50", "ms", True),
    ("latency_ms.p95", "latency p95", "ms", True),
    ("latency_ms.p99", "latency p99", "ms", True),
    ("deliveries_per_s", "delivered updates/s", "/s", False),
    ("delivered_fraction", "delivered", "frac", False),
    ("cpu_us_per_delivery", "server CPU/delivery", "µs", True),
    ("rss_per_conn_kib", "RSS/conn", "KiB", True),
    ("loadgen_cpu_pct", "loadgen CPU", "%", True),
]
IDLE_METRICS: list[Metric] = [
    ("connect_sync_ms", "connect+sync all", "ms", True),
    ("rss_per_conn_kib", "RSS per idle conn", "KiB", True),
    ("rss_kib.after", "RSS total", "KiB", True),
    ("clients_open_at_end", "open at end", "", False),
]
LARGEDOC_METRICS: list[Metric] = [
    ("preload_ms", "preload visible", "ms", True),
    ("join_p50_ms", "join p50", "ms", True),
    ("join_all_ms", "all joined+synced", "ms", True),
    ("server_cpu_ms_join", "server CPU for join", "ms", True),
    ("rss_kib.after_join", "RSS after join", "KiB", True),
]
LOADGEN_BOUND_PCT = 90
METRICS = {
    "fanout": FANOUT_METRICS,
    "burst": FANOUT_METRICS,
    "idle": IDLE_METRICS,
    "largedoc": LARGEDOC_METRICS,
}
# The figures the ratio table is about, per scenario kind.
HEADLINE = {
    # Paced writers: delivered/s equals the offered rate for every server that
    # keeps up, so it is no headline there; it is the point of a burst.
    "fanout": ["latency_ms.p50", "latency_ms.p99", "cpu_us_per_delivery"],
    "burst": ["deliveries_per_s", "latency_ms.p50", "latency_ms.p99", "cpu_us_per_delivery"],
    "idle": ["rss_per_conn_kib", "connect_sync_ms"],
    "largedoc": ["join_all_ms", "preload_ms"],
}


def dig(d: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def derive(result: dict[str, Any]) -> dict[str, Any]:
    """Add figures computed from raw counters."""
    cpu, n = result.get("server_cpu_ms_edit_phase"), result.get("deliveries")
    if isinstance(cpu, (int, float)) and n:
        result["cpu_us_per_delivery"] = round(cpu * 1000 / n, 2)
    return result


@dataclass
class Cell:
    """All repeats of one (scenario, server)."""

    runs: list[dict[str, Any]]

    @property
    def ok_runs(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("ok")]

    def median(self, path: str) -> float | None:
        values = [dig(r, path) for r in self.ok_runs]
        nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return statistics.median(nums) if nums else None

    @property
    def complete(self) -> bool:
        """Delivered (nearly) everything and kept every edit: fit to compare.

        A server that drops updates can look fast on the updates it did
        deliver, so it is neither ranked as "best peer" nor given a ratio.
        """
        frac = self.median("delivered_fraction")
        return bool(self.ok_runs) and self.verified is not False and (frac is None or frac >= 0.99)

    @property
    def verified(self) -> bool | None:
        flags = [r.get("verify_ok") for r in self.ok_runs if "verify_ok" in r]
        return all(flags) if flags else None

    def problems(self) -> list[str]:
        out = []
        for i, r in enumerate(self.runs):
            if not r.get("ok"):
                out.append(f"run {i + 1}: {str(r.get('error', 'failed')).splitlines()[0][:160]}")
                continue
            if r.get("clients_failed"):
                out.append(f"run {i + 1}: {r['clients_failed']} clients failed to sync")
            frac = r.get("delivered_fraction")
            if isinstance(frac, (int, float)) and frac < 1:
                out.append(f"run {i + 1}: only {frac:.1%} of expected deliveries arrived")
            if r.get("unexpected_closes"):
                out.append(f"run {i + 1}: unexpected closes {r['unexpected_closes']}")
            if r.get("verify_ok") is False:
                out.append(f"run {i + 1}: final document check failed {r.get('verify')}")
        return out


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "frac":
        return f"{value:.4f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def ratio_text(collab: float | None, other: float | None, lower_better: bool) -> str:
    if collab is None or other is None or other == 0:
        return "—"
    r = collab / other
    if abs(r - 1) < 0.005:
        return "1.00x (same)"
    better = r < 1 if lower_better else r > 1
    return f"{r:.2f}x ({'better' if better else 'worse'})"


def best_peer(
    cells: dict[str, Cell], peers: list[str], path: str, lower_better: bool
) -> tuple[str, float] | None:
    values = [(name, cells[name].median(path)) for name in peers if cells[name].complete]
    present = [(n, v) for n, v in values if v is not None]
    if not present:
        return None
    pick = min if lower_better else max
    return pick(present, key=lambda nv: nv[1])


def scenario_section(
    sid: str,
    title: str,
    kind: str,
    desc: str,
    cells: dict[str, Cell],
    peers: list[str],
    protos: dict[str, str],
) -> list[str]:
    metrics = METRICS[kind]
    lines = [f"### {sid}. {title}", "", desc, ""]
    header = (
        "| server | "
        + " | ".join(
            f"{label} ({unit})" if unit and unit != "frac" else label
            for _, label, unit, _ in metrics
        )
        + " | verified | runs ok |"
    )
    lines += [header, "|" + "---|" * (len(metrics) + 3)]
    bound = False
    for name, cell in cells.items():
        row = [fmt(cell.median(p), u) for p, _, u, _ in metrics]
        if metrics is FANOUT_METRICS and (cell.median("loadgen_cpu_pct") or 0) >= LOADGEN_BOUND_PCT:
            # The load generator was saturated: this server may be faster than shown.
            row[[m[0] for m in metrics].index("deliveries_per_s")] += " †"
            bound = True
        verified = {True: "yes", False: "**NO**", None: "—"}[cell.verified]
        lines.append(
            f"| {name} | "
            + " | ".join(row)
            + f" | {verified} | {len(cell.ok_runs)}/{len(cell.runs)} |"
        )
    lines.append("")
    if bound:
        lines += [
            f"† the load generator's core was ≥ {LOADGEN_BOUND_PCT} % busy: that server may be "
            "faster than the figure shows (the load generator was the bottleneck).",
            "",
        ]
    by_path = {m[0]: m for m in metrics}
    present_peers = [p for p in peers if p in cells]
    for cname in [n for n in cells if n.startswith("collab")]:
        if not cells[cname].complete:
            lines += [f"No ratios for **{cname}**: incomplete delivery or failed check.", ""]
            continue
        if present_peers:
            lines += peer_ratios(cname, cells, present_peers, protos, kind, by_path)
    if "collab-redis" in cells and "collab" in cells and cells["collab-redis"].complete:
        # Scenario F has no peers: what crossing Redis costs is the question.
        lines += ["Cross-instance cost (collab-redis ÷ single-process collab):", ""]
        lines += ["| metric | collab-redis ÷ collab |", "|---|---|"]
        for path in HEADLINE[kind]:
            _, label, _, lower = by_path[path]
            ratio = ratio_text(
                cells["collab-redis"].median(path), cells["collab"].median(path), lower
            )
            lines.append(f"| {label} | {ratio} |")
        lines.append("")
    notes = [(n, p) for n, c in cells.items() for p in c.problems()]
    if notes:
        lines += ["Problems seen:", ""] + [f"- {n}: {p}" for n, p in notes] + [""]
    return lines


def peer_ratios(
    cname: str,
    cells: dict[str, Cell],
    peers: list[str],
    protos: dict[str, str],
    kind: str,
    by_path: dict[str, Metric],
) -> list[str]:
    """collab against the best peer overall, the best on its own wire protocol,
    and pycrdt-websocket (the Python baseline)."""
    same = [p for p in peers if protos.get(p) == protos.get(cname)]
    lines = [
        f"Ratios for **{cname}** (collab ÷ other):",
        "",
        "| metric | best peer | collab ÷ best | best same-protocol peer | collab ÷ it "
        "| collab ÷ pycrdt-websocket |",
        "|---|---|---|---|---|---|",
    ]
    for path in HEADLINE[kind]:
        _, label, _, lower = by_path[path]
        mine = cells[cname].median(path)
        best = best_peer(cells, peers, path, lower)
        best_same = best_peer(cells, same, path, lower)
        pyc = cells.get("pycrdt-websocket")
        py = pyc.median(path) if pyc and pyc.complete else None
        lines.append(
            f"| {label} | {best[0] if best else '—'} | "
            f"{ratio_text(mine, best[1] if best else None, lower)} | "
            f"{best_same[0] if best_same else '—'} | "
            f"{ratio_text(mine, best_same[1] if best_same else None, lower)} | "
            f"{ratio_text(mine, py, lower)} |"
        )
    return [*lines, ""]


def render(
    meta: dict[str, Any],
    sections: list[list[str]],
    skipped: dict[str, str],
    scoreboard: list[str] | None = None,
) -> str:
    """The whole RESULTS.md: header and machine info, the scoreboard (when
    given), then one section per scenario."""
    lines = ["# collab benchmark results", ""]
    if meta.get("quick"):
        lines += [
            "> **Quick mode**: small N and one repeat. A smoke test of the harness,",
            "> not a benchmark; do not quote these numbers.",
            "",
        ]
    lines += [
        f"- date: {meta['date']}",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['cpu_model']}, {meta['cpus']} CPUs, {meta['mem_gib']} GiB RAM, "
        f"{meta['kernel']}",
        f"- load average at start: {meta['loadavg']} (other work on the machine skews results)",
        f"- runtimes: Node {meta['node']}, Python {meta['python']}",
        f"- packages: {meta['packages']}",
        f"- git: {meta['git']}",
        f"- method: fresh server per run pinned to CPU {meta['server_cpu']}, load generator on CPU "
        f"{meta['loadgen_cpu']}; {meta['repeats']} repeat(s) per cell, median shown; "
        f"total wall time {meta['wall_s']:.0f} s",
        "",
    ]
    if skipped:
        lines += ["Servers not run:", ""] + [f"- {k}: {v}" for k, v in skipped.items()] + [""]
    if scoreboard:
        lines += [*scoreboard, "## Scenarios", ""]
    lines += [
        "In the scenario sections, ratios are collab ÷ other; each says whether that "
        'is better or worse for collab. "verified" = a fresh client fetched the final '
        "document and found every edit.",
        "",
    ]
    for section in sections:
        lines += section
    return "\n".join(lines).rstrip() + "\n"
