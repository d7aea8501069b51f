"""Prometheus metrics (prometheus-client), one registry per app.

With several worker processes, prometheus-client's multiprocess mode is used
when ``PROMETHEUS_MULTIPROC_DIR`` is set (``collab serve --workers N`` sets
it to a fresh directory), so ``/metrics`` on any worker reports counters
summed over all of them, and gauges summed (or maxed) over the live ones.

The per-frame path never touches prometheus-client: frames and bytes are
tallied as plain ints in a dict per (direction, endpoint) and pushed to the
counters by :meth:`Metrics.flush` (on every scrape and every lag-monitor
tick). Labelled children are looked up once and cached. This server is
benchmarked for speed; a lock and an mmap write per frame would show.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ..transport.connection import CloseRecord

# prometheus-client itself picks file-backed values from this variable at
# import; we only mirror its decision.
_MULTI = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BACKPLANE_EVENTS = ("publish", "receive", "error", "reconnect", "dropped", "large", "invalid")

# direction, endpoint -> frame type -> [frames, bytes]
Tally = dict[str, list[int]]


def _gauge(
    name: str, doc: str, labels: tuple[str, ...], registry: CollectorRegistry, mode: str = "livesum"
) -> Gauge:
    # "livesum": the sum over live workers (a dead worker's connections are gone);
    # "livemax" for lag, where a sum means nothing.
    kw = {"multiprocess_mode": mode} if _MULTI else {}
    return Gauge(name, doc, labels, registry=registry, **kw)  # type: ignore[arg-type]


class Metrics:
    def __init__(self) -> None:
        # In multiprocess mode values live in files; this registry only names them.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.active_connections = _gauge(
            "collab_active_connections", "Open sockets", ("endpoint",), r
        )
        self.active_rooms = _gauge("collab_active_rooms", "Loaded rooms", (), r)
        self.connections_opened = Counter(
            "collab_connections_opened", "Sockets accepted", ("endpoint",), registry=r
        )
        self.closes = Counter(
            "collab_connection_closes",
            "Socket closes by code and initiator (client, server, abnormal = 1005/1006)",
            ("endpoint", "code", "initiator"),
            registry=r,
        )
        self.frames_in = Counter(
            "collab_frames_in", "Frames received by type", ("endpoint", "type"), registry=r
        )
        self.bytes_in = Counter(
            "collab_bytes_in", "Bytes received by frame type", ("endpoint", "type"), registry=r
        )
        self.frames_out = Counter(
            "collab_frames_out", "Frames sent by type", ("endpoint", "type"), registry=r
        )
        self.bytes_out = Counter(
            "collab_bytes_out", "Bytes sent by frame type", ("endpoint", "type"), registry=r
        )
        self.rejected = Counter(
            "collab_frames_rejected",
            "Frames rejected, by reason",
            ("endpoint", "reason"),
            registry=r,
        )
        self.handshakes_refused = Counter(
            "collab_handshakes_refused",
            "WebSocket handshakes refused before the upgrade "
            "(origin, connection limit, connect rate)",
            ("endpoint", "reason"),
            registry=r,
        )
        self.auth_denials = Counter(
            "collab_auth_denied", "Connections denied by authenticate", ("endpoint",), registry=r
        )
        self.queue_overflows = Counter(
            "collab_outbound_queue_overflows",
            "Connections closed for a full outbound queue",
            (),
            registry=r,
        )
        self.store_seconds = Histogram(
            "collab_store_seconds",
            "Store latency by operation (write, check) and result",
            ("op", "result"),
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.store_errors = Counter(
            "collab_store_errors", "Failed store operations", ("op",), registry=r
        )
        self.backplane_events = Counter(
            "collab_backplane_events",
            "Backplane publishes, receives, errors, reconnects, drops, large messages sent "
            "through a key, invalid messages",
            ("event",),
            registry=r,
        )
        self.api_requests = Counter(
            "collab_api_requests",
            "HTTP API calls by method, route template and status "
            "(never by room, connection or key)",
            ("method", "route", "status"),
            registry=r,
        )
        self.hook_failures = Counter(
            "collab_hook_failures",
            "Hook calls that raised or timed out (COLLAB_HOOK_TIMEOUT)",
            ("hook", "cause"),
            registry=r,
        )
        self.hook_changes_dropped = Counter(
            "collab_hook_changes_dropped",
            "on_change calls dropped: the hook fell more than its backlog behind the edits",
            (),
            registry=r,
        )
        self.store_buffer_collapsed = Counter(
            "collab_store_buffer_collapsed",
            "Unstored updates of a room folded into one "
            "snapshot (COLLAB_STORE_BUFFER_BYTES passed during a store outage)",
            (),
            registry=r,
        )
        self.oversized_rooms = _gauge(
            "collab_oversized_rooms",
            "Loaded rooms past COLLAB_MAX_DOCUMENT_BYTES (served read-only)",
            (),
            r,
        )
        self.loop_lag = _gauge(
            "collab_event_loop_lag_seconds",
            "Event loop scheduling delay (last sample)",
            (),
            r,
            "livemax",
        )
        self._tallies: dict[tuple[str, str], Tally] = {}
        self._counters: dict[tuple[str, str], Callable[[str, int], None]] = {}
        self._traffic_children: dict[tuple[str, str, str], tuple[Counter, Counter]] = {}
        for event in BACKPLANE_EVENTS:
            self.backplane_events.labels(event)
        for op in ("write", "check"):
            self.store_errors.labels(op)

    # -- hot path: plain ints -------------------------------------------------

    def tally(self, direction: str, endpoint: str) -> Tally:
        """The shared ``{type: [frames, bytes]}`` dict for ``direction`` ("in"/"out")."""
        key = (direction, endpoint)
        t = self._tallies.get(key)
        if t is None:
            t = self._tallies[key] = {}
        return t

    def flush(self) -> None:
        """Push the tallied frames and bytes to the Prometheus counters."""
        for (direction, endpoint), kinds in self._tallies.items():
            for kind, counts in kinds.items():
                frames, size = counts
                if not frames:
                    continue
                counts[0] = counts[1] = 0
                key = (direction, endpoint, kind)
                children = self._traffic_children.get(key)
                if children is None:
                    f, b = (
                        (self.frames_in, self.bytes_in)
                        if direction == "in"
                        else (self.frames_out, self.bytes_out)
                    )
                    children = self._traffic_children[key] = (
                        f.labels(endpoint, kind),
                        b.labels(endpoint, kind),
                    )
                children[0].inc(frames)
                children[1].inc(size)

    # -- call sites -------------------------------------------------------------

    def connection_opened(self, endpoint: str) -> None:
        self.connections_opened.labels(endpoint).inc()
        self.active_connections.labels(endpoint).inc()

    def connection_closed(self, endpoint: str, record: CloseRecord) -> None:
        self.active_connections.labels(endpoint).dec()
        self.closes.labels(endpoint, str(record.code), record.initiator.value).inc()

    def counter(self, direction: str, endpoint: str) -> Callable[[str, int], None]:
        """``count(label, size)`` for one direction of one endpoint: the one
        frame counter of the hot path (plain ints, pushed by :meth:`flush`).
        One function per (direction, endpoint), shared by every socket."""
        key = (direction, endpoint)
        existing = self._counters.get(key)
        if existing is not None:
            return existing
        tally = self.tally(direction, endpoint)

        def count(label: str, size: int) -> None:
            counts = tally.get(label)
            if counts is None:
                counts = tally[label] = [0, 0]
            counts[0] += 1
            counts[1] += size

        self._counters[key] = count
        return count

    def frame_rejected(self, endpoint: str, reason: str) -> None:
        self.rejected.labels(endpoint, reason).inc()

    def handshake_refused(self, endpoint: str, reason: str) -> None:
        self.handshakes_refused.labels(endpoint, reason).inc()

    def hook_failed(self, hook: str, cause: str) -> None:
        self.hook_failures.labels(hook, cause).inc()

    def auth_denied(self, endpoint: str) -> None:
        self.auth_denials.labels(endpoint).inc()

    def store_result(self, seconds: float, failed: bool, op: str = "write") -> None:
        self.store_seconds.labels(op, "error" if failed else "ok").observe(seconds)
        if failed:
            self.store_errors.labels(op).inc()

    def render(self) -> bytes:
        self.flush()
        if _MULTI:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


@contextmanager
def multiproc_dir(configured: str | None) -> Iterator[str]:
    """A fresh directory for prometheus-client's multiprocess files.

    Files left by a previous run would be summed into this one's counters, so
    a configured directory is emptied of them first (prometheus-client asks
    for a wipe between runs); without one, a temporary directory is made and
    removed afterwards.
    """
    if configured:
        os.makedirs(configured, exist_ok=True)
        for path in glob.glob(os.path.join(configured, "*.db")):
            os.remove(path)
        yield configured
        return
    path = tempfile.mkdtemp(prefix="collab-metrics-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def mark_process_dead(pid: int, path: str) -> None:
    """Drop a dead worker's live-gauge files (its connections are gone)."""
    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
