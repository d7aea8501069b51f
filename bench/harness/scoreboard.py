"""The scoreboard at the top of RESULTS.md: one line per headline figure.

Each row is one (scenario, metric). The ratio is oriented so that >= 1.0
means collab is ahead: best_peer / collab where lower is better (latency,
memory), collab / best_peer where higher is better (throughput). "Best peer"
is the best *complete* cell (delivered >= 99 % and passed the document check)
among the peers given, never a collab variant; the figures are the medians
shown in the scenario tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.report import LOADGEN_BOUND_PCT, Cell, fmt

# (row name, scenario id, metric path, unit, lower_is_better)
Row = tuple[str, str, str, str, bool]
P50, P99, RATE, RSS = "latency_ms.p50", "latency_ms.p99", "deliveries_per_s", "rss_per_conn_kib"

ROWS: list[Row] = [
    ("1 room x 50 clients, 5 writers x 20 edits/s — latency p99", "A", P99, "ms", True),
    ("1 room x 50 clients, 5 writers x 20 edits/s — latency p50", "A", P50, "ms", True),
    ("1 room x 200 clients, 1 writer x 20 edits/s — latency p99", "G", P99, "ms", True),
    ("100 rooms x 5 clients, paced — latency p99", "C", P99, "ms", True),
    (
        "1 room x 50 clients, burst (5 writers flat out) — delivered updates/s",
        "H",
        RATE,
        "/s",
        False,
    ),
    ("1 room x 200 clients, burst — delivered updates/s", "B", RATE, "/s", False),
    ("100 rooms x 5 clients, burst — delivered updates/s", "I", RATE, "/s", False),
    ("1,000 idle sockets in 1 room — RSS per socket", "D", RSS, "KiB", True),
    ("1,000 idle sockets in 1,000 rooms — RSS per socket", "J", RSS, "KiB", True),
]

# (block title, collab configuration, peers it is compared with)
BLOCKS: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "collab (y-websocket protocol) vs the best peer",
        "collab",
        ("hocuspocus4", "hocuspocus3", "y-websocket", "pycrdt-websocket"),
    ),
    ("collab-hocuspocus vs hocuspocus4", "collab-hocuspocus", ("hocuspocus4",)),
]


@dataclass
class Line:
    """One scoreboard line, as rendered and as stored in results.json."""

    block: str
    row: str
    scenario: str
    metric: str
    collab: float | None
    collab_note: str  # "" | "not run" | "failed" | "incomplete"
    collab_loadgen_bound: bool
    best_peer: str | None
    peer_value: float | None
    peer_note: str  # "" | "not run" | "none complete"
    peer_loadgen_bound: bool
    ratio: float | None
    met: bool | None


def _bound(cell: Cell, path: str) -> bool:
    """The same † rule as the tables: only throughput is marked."""
    if path != RATE:
        return False
    return (cell.median("loadgen_cpu_pct") or 0) >= LOADGEN_BOUND_PCT


def score(cells: dict[str, dict[str, Cell]], servers: list[str]) -> list[Line]:
    """Every block's rows from the cells of this run (sid -> server -> Cell)."""
    out = []
    for block, cname, peer_names in BLOCKS:
        for name, sid, path, _unit, lower in ROWS:
            sc_cells = cells.get(sid, {})
            line = Line(block, name, sid, path, None, "", False, None, None, "", False, None, None)
            mine = sc_cells.get(cname)
            if mine is None:
                line.collab_note = "not run"
            elif not mine.ok_runs:
                line.collab_note = "failed"
            else:
                line.collab = mine.median(path)
                line.collab_loadgen_bound = _bound(mine, path)
                if not mine.complete:
                    line.collab_note = "incomplete"
            peers = [p for p in peer_names if p in sc_cells and p in servers]
            ranked = [
                (p, v)
                for p in peers
                if sc_cells[p].complete and (v := sc_cells[p].median(path)) is not None
            ]
            if not peers:
                line.peer_note = "not run"
            elif not ranked:
                line.peer_note = "none complete"
            else:
                best = (min if lower else max)(ranked, key=lambda pv: pv[1])
                line.best_peer, line.peer_value = best
                line.peer_loadgen_bound = _bound(sc_cells[best[0]], path)
            if line.collab_note == "incomplete":
                line.met = False
            elif line.collab is not None and line.peer_value is not None and line.collab > 0:
                line.ratio = (
                    line.peer_value / line.collab if lower else line.collab / line.peer_value
                )
                line.met = line.ratio >= 1.0
            out.append(line)
    return out


def _ratio_text(r: float | None) -> str:
    if r is None:
        return "—"
    # 0.996 must not print as "1.00" next to "no".
    return f"{r:.3f}" if 0.995 <= r < 1.005 else f"{r:.2f}"


def _figure(value: float | None, note: str, unit: str, bound: bool) -> str:
    if value is None:
        return note or "—"
    text = f"{fmt(value, unit)} {unit}"
    if bound:
        text += " †"
    return f"{text} ({note})" if note else text


def render_scoreboard(lines: list[Line], quick: bool) -> list[str]:
    units = {name: unit for name, _sid, _path, unit, _lower in ROWS}
    out = ["## Scoreboard", ""]
    out += [
        "Ratio >= 1.0 means collab is ahead: best peer ÷ collab for latency and memory "
        "(lower is better), collab ÷ best peer for delivered updates/s (higher is better). "
        "Figures are the medians from the scenario tables below; a peer that delivered "
        "< 99 % or failed the document check is not ranked.",
        "",
    ]
    if quick:
        out += [
            "Quick mode: the row names give the full-run sizes; this run used the smaller "
            "quick sizes stated in each scenario's section.",
            "",
        ]
    any_bound = False
    for block, _cname, _peers in BLOCKS:
        rows = [ln for ln in lines if ln.block == block]
        if not rows:
            continue
        out += [f"**{block}**", ""]
        out += [
            "| # | row | scenario | collab | best peer | peer figure | ratio | met (>= 1.0) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for i, ln in enumerate(rows, 1):
            unit = units[ln.row]
            any_bound = any_bound or ln.collab_loadgen_bound or ln.peer_loadgen_bound
            if ln.collab_note == "not run" and ln.peer_note == "not run":
                met = "not run"
            elif ln.met is None:
                met = "not run" if "not run" in (ln.collab_note, ln.peer_note) else "—"
            else:
                met = "yes" if ln.met else "no"
            out.append(
                f"| {i} | {ln.row} | {ln.scenario} | "
                f"{_figure(ln.collab, ln.collab_note, unit, ln.collab_loadgen_bound)} | "
                f"{ln.best_peer or ln.peer_note or '—'} | "
                f"{_figure(ln.peer_value, '', unit, ln.peer_loadgen_bound)} | "
                f"{_ratio_text(ln.ratio)} | {met} |"
            )
        out.append("")
    if any_bound:
        out += [
            f"† the load generator's core was ≥ {LOADGEN_BOUND_PCT} % busy in that cell, so "
            "the figure is a lower bound for that server. A ratio whose collab figure has † "
            "is a lower bound for collab's ratio; one whose peer figure has † is an upper "
            "bound.",
            "",
        ]
    return out


def as_json(lines: list[Line]) -> list[dict[str, Any]]:
    return [asdict(ln) for ln in lines]
