"""bench/harness/scoreboard.py: which way the ratio points, "not run", † and
unranked peers, on hand-made cells (no servers, no load generator)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from harness.report import Cell
from harness.scoreboard import ROWS, render_scoreboard, score

SERVERS = ["collab", "collab-hocuspocus", "hocuspocus4", "y-websocket"]


def run(**figures: Any) -> Cell:
    return Cell([{"ok": True, "delivered_fraction": 1.0, "verify_ok": True, **figures}])


def line(lines: list[Any], block_collab: str, sid: str, metric: str) -> Any:
    block = 0 if block_collab == "collab" else 1
    picked = [ln for ln in lines if ln.scenario == sid and ln.metric == metric]
    return picked[block]


def test_latency_ratio_is_peer_over_collab() -> None:
    cells = {
        "A": {
            "collab": run(latency_ms={"p50": 1.0, "p99": 4.0}),
            "hocuspocus4": run(latency_ms={"p50": 2.0, "p99": 6.0}),
            "y-websocket": run(latency_ms={"p50": 0.5, "p99": 5.0}),
        }
    }
    lines = score(cells, SERVERS)
    p99 = line(lines, "collab", "A", "latency_ms.p99")
    assert (p99.best_peer, p99.peer_value, p99.ratio, p99.met) == ("y-websocket", 5.0, 1.25, True)
    p50 = line(lines, "collab", "A", "latency_ms.p50")
    assert (p50.best_peer, p50.ratio, p50.met) == ("y-websocket", 0.5, False)


def test_throughput_ratio_is_collab_over_peer_and_keeps_the_dagger() -> None:
    cells = {
        "B": {
            "collab": run(deliveries_per_s=500.0, loadgen_cpu_pct=99.0),
            "collab-hocuspocus": run(deliveries_per_s=300.0, loadgen_cpu_pct=50.0),
            "hocuspocus4": run(deliveries_per_s=400.0, loadgen_cpu_pct=70.0),
            "y-websocket": run(deliveries_per_s=100.0),
        }
    }
    lines = score(cells, SERVERS)
    mine = line(lines, "collab", "B", "deliveries_per_s")
    assert (mine.best_peer, mine.ratio, mine.met, mine.collab_loadgen_bound) == (
        "hocuspocus4",
        1.25,
        True,
        True,
    )
    hp = line(lines, "collab-hocuspocus", "B", "deliveries_per_s")
    assert (hp.best_peer, hp.ratio, hp.met, hp.collab_loadgen_bound) == (
        "hocuspocus4",
        0.75,
        False,
        False,
    )
    text = "\n".join(render_scoreboard(lines, quick=False))
    assert "| 500 /s † | hocuspocus4 | 400 /s | 1.25 | yes |" in text
    assert "| 300 /s | hocuspocus4 | 400 /s | 0.75 | no |" in text


def test_rows_not_run_and_unranked_peers() -> None:
    incomplete = Cell([{"ok": True, "delivered_fraction": 0.5, "rss_per_conn_kib": 1.0}])
    cells = {"D": {"collab": run(rss_per_conn_kib=20.0), "y-websocket": incomplete}}
    lines = score(cells, SERVERS)
    assert len(lines) == 2 * len(ROWS)
    d = line(lines, "collab", "D", "rss_per_conn_kib")
    assert (d.collab, d.best_peer, d.peer_note, d.ratio, d.met) == (
        20.0,
        None,
        "none complete",
        None,
        None,
    )
    j = line(lines, "collab", "J", "rss_per_conn_kib")
    assert (j.collab_note, j.peer_note, j.met) == ("not run", "not run", None)
    text = "\n".join(render_scoreboard(lines, quick=True))
    assert "| J | not run | not run | — | — | not run |" in text
    assert "| D | 20.0 KiB | none complete | — | — | — |" in text
