"""The benchmark scenarios: what the load generator is asked to do, full and quick.

A-F are the original comparison; G-J fill in the rows of the scoreboard
(bench/harness/scoreboard.py) that A-F did not cover. Every load is bounded:
a fixed number of edits per writer (or sockets), plus the load generator's
deadlines (connect, edit phase, drain) and its watchdog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    Scenario(
        "G",
        "Big room, one paced writer",
        "fanout",
        "Latency of a wide fan-out at a modest offered load: each edit goes to every "
        "other client of a big room.",
        dict(rooms=1, clientsPerRoom=200, writersPerRoom=1, rate=20, edits=60, awareness=True),
        dict(rooms=1, clientsPerRoom=50, writersPerRoom=1, rate=20, edits=20, awareness=True),
    ),
    Scenario(
        "H",
        "Busy room, burst",
        "fanout",
        "A's room and writer count with the pacing off: five writers at once, so "
        "throughput includes interleaving concurrent writers' updates.",
        dict(
            rooms=1,
            clientsPerRoom=50,
            writersPerRoom=5,
            rate=0,
            edits=500,
            awareness=True,
            drainTimeoutMs=30000,
        ),
        dict(
            rooms=1,
            clientsPerRoom=20,
            writersPerRoom=5,
            rate=0,
            edits=100,
            awareness=True,
            drainTimeoutMs=15000,
        ),
    ),
    Scenario(
        "I",
        "Many small rooms, burst",
        "fanout",
        "C's rooms with the pacing off: per-room overhead at full load (the writers "
        "are served round-robin, one edit each per turn).",
        dict(
            rooms=100,
            clientsPerRoom=5,
            writersPerRoom=1,
            rate=0,
            edits=200,
            awareness=True,
            drainTimeoutMs=30000,
        ),
        dict(
            rooms=20,
            clientsPerRoom=5,
            writersPerRoom=1,
            rate=0,
            edits=50,
            awareness=True,
            drainTimeoutMs=15000,
        ),
    ),
    Scenario(
        "J",
        "Idle connections, one room each",
        "idle",
        "Memory per connection when every socket has its own room (so each one also "
        "costs a room and an empty document): server RSS before and after, divided by "
        "the number of new connections.",
        dict(clients=1000, rooms=1000),
        dict(clients=200, rooms=200),
    ),
]

BY_ID = {s.sid: s for s in SCENARIOS}
NEEDS_REDIS = ("F",)


def default_ids(with_redis: bool) -> list[str]:
    return [s.sid for s in SCENARIOS if with_redis or s.sid not in NEEDS_REDIS]


def params(sc: Scenario, quick: bool) -> dict[str, Any]:
    return sc.quick if quick else sc.full


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
        rooms = p.get("rooms", 1)
        where = (
            "in one room"
            if rooms == 1
            else "each in its own room"
            if rooms == p["clients"]
            else f"spread over {rooms:,} rooms"
        )
        text = f"{p['clients']:,} idle clients {where} (no awareness)."
    else:
        text = (
            f"A deterministic {p['trace']['ops']:,}-operation editing trace (3 authors: typing, "
            f"backspaces, jumps, occasional merges) pre-loaded by one client; then "
            f"{p['joiners']} clients join at once."
        )
    return f"{text} {sc.desc}"


def report_kind(sc: Scenario, quick: bool) -> str:
    p = params(sc, quick)
    return "burst" if sc.kind == "fanout" and p["rate"] == 0 else sc.kind
