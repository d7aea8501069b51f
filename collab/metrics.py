"""Prometheus metrics (prometheus-client), one registry per app.

With several worker processes, prometheus-client's multiprocess mode is used
when ``PROMETHEUS_MULTIPROC_DIR`` is set (``collab serve --workers N`` sets
it), so ``/metrics`` on any worker reports the sum over all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .connection import CloseRecord

_MULTI = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _gauge(name: str, doc: str, labels: tuple[str, ...], registry: CollectorRegistry) -> Gauge:
    # "livesum": the sum over live workers (a dead worker's connections are gone).
    kw = {"multiprocess_mode": "livesum"} if _MULTI else {}
    return Gauge(name, doc, labels, registry=registry, **kw)  # type: ignore[arg-type]


class Metrics:
    def __init__(self) -> None:
        # In multiprocess mode values live in files; this registry only names them.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.active_connections = _gauge(
            "collab_active_connections", "Open sockets", ("endpoint",), r)
        self.active_rooms = _gauge("collab_active_rooms", "Loaded rooms", (), r)
        self.connections_opened = Counter(
            "collab_connections_opened", "Sockets accepted", ("endpoint",), registry=r)
        self.closes = Counter(
            "collab_connection_closes", "Socket closes by code and initiator",
            ("endpoint", "code", "initiator"), registry=r)
        self.frames_in = Counter(
            "collab_frames_in", "Frames received by type", ("endpoint", "type"), registry=r)
        self.bytes_in = Counter(
            "collab_bytes_in", "Bytes received by frame type", ("endpoint", "type"), registry=r)
        self.frames_out = Counter("collab_frames_out", "Frames sent", (), registry=r)
        self.bytes_out = Counter("collab_bytes_out", "Bytes sent", (), registry=r)
        self.rejected = Counter(
            "collab_frames_rejected", "Frames rejected, by reason", ("endpoint", "reason"),
            registry=r)
        self.auth_denials = Counter(
            "collab_auth_denied", "Connections denied by authenticate", ("endpoint",),
            registry=r)
        self.queue_overflows = Counter(
            "collab_outbound_queue_overflows", "Connections closed for a full outbound queue",
            (), registry=r)
        self.store_seconds = Histogram(
            "collab_store_seconds", "Store write latency", ("result",), registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.store_errors = Counter("collab_store_errors", "Failed store writes", (), registry=r)
        self.backplane_events = Counter(
            "collab_backplane_events", "Backplane publishes, receives, errors, reconnects",
            ("event",), registry=r)
        self.loop_lag = _gauge("collab_event_loop_lag_seconds", "Event loop lag", (), r)

    # -- call sites ---------------------------------------------------------

    def connection_opened(self, endpoint: str) -> None:
        self.connections_opened.labels(endpoint).inc()
        self.active_connections.labels(endpoint).inc()

    def connection_closed(self, endpoint: str, record: CloseRecord) -> None:
        self.active_connections.labels(endpoint).dec()
        self.closes.labels(endpoint, str(record.code), record.initiator.value).inc()
        self.frames_out.inc(record.stats.frames_out)
        self.bytes_out.inc(record.stats.bytes_out)

    def frame_in(self, endpoint: str, kind: str, size: int) -> None:
        self.frames_in.labels(endpoint, kind).inc()
        self.bytes_in.labels(endpoint, kind).inc(size)

    def frame_rejected(self, endpoint: str, reason: str) -> None:
        self.rejected.labels(endpoint, reason).inc()

    def auth_denied(self, endpoint: str) -> None:
        self.auth_denials.labels(endpoint).inc()

    def store_result(self, seconds: float, failed: bool) -> None:
        self.store_seconds.labels("error" if failed else "ok").observe(seconds)
        if failed:
            self.store_errors.inc()

    def render(self) -> bytes:
        if _MULTI:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
