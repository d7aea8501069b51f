"""One frozen :class:`Settings` object, read once at start-up.

Every field is settable as ``COLLAB_<FIELD>`` in the environment and, for the
CLI, as ``--<field>`` (dashes for underscores). No other module reads the
environment: they are handed a ``Settings``. A malformed value raises
:class:`~collab.errors.ConfigError` naming the variable.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "COLLAB_"


def _instance_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Settings:
    # Network (used by `collab serve`; ignored when mounted in another app).
    host: str = "127.0.0.1"
    port: int = 1234
    workers: int = 1
    # Persistence: sqlite:///relative.db, sqlite:////abs.db, memory://, postgresql://...
    store_url: str = "sqlite:///collab.sqlite3"
    # Batched writes: flush a room `flush_debounce` s after its last change,
    # and at most `flush_max_wait` s after its first unflushed change.
    flush_debounce: float = 0.5
    flush_max_wait: float = 3.0
    # Compact a room's update log into one snapshot past this many rows.
    compact_threshold: int = 100
    # A room stays loaded this long after its last socket leaves.
    room_grace: float = 10.0
    # While updates keep arriving, a room fans out at most once per window,
    # so a flood goes out as fewer, merged frames; after a quiet spell the
    # next update goes out on the next event-loop turn. 0 = every turn.
    fanout_window: float = 0.005
    # Redis backplane (unset = single instance). TLS options may also be
    # given in the URL query (ssl_ca_certs=...), as redis-py accepts them.
    redis_url: str = ""
    redis_username: str = ""
    redis_password: str = ""
    redis_ssl_ca_certs: str = ""
    redis_ssl_certfile: str = ""
    redis_ssl_keyfile: str = ""
    redis_prefix: str = "collab"
    redis_backoff_base: float = 0.2
    redis_backoff_cap: float = 10.0
    # Connect/read timeout of Redis commands; a pub/sub link silent this long
    # past a PING is declared dead (a hung server keeps TCP open).
    redis_socket_timeout: float = 5.0
    # Limits.
    max_frame_bytes: int = 4 * 1024 * 1024
    max_room_name: int = 256
    outbound_queue_frames: int = 1024
    outbound_queue_bytes: int = 16 * 1024 * 1024
    # Hocuspocus: frames a socket may send for documents still authenticating
    # (queued until the authenticate hook answers), in count and in bytes.
    auth_queue_frames: int = 64
    auth_queue_bytes: int = 8 * 1024 * 1024
    # Keepalive: ping every N s (under an ALB's 60 s idle timeout); a peer
    # that misses the pong for `ping_timeout` s is closed.
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    # SIGTERM: readiness fails at once, sockets get 1001 after this long.
    drain_seconds: float = 10.0
    # Observability.
    log_format: str = "text"
    log_level: str = "info"
    health_path: str = "/healthz"
    ready_path: str = "/readyz"
    metrics_path: str = "/metrics"
    # Event-loop lag is sampled every `loop_lag_interval` s; above
    # `loop_lag_fail` s the "event_loop" readiness component fails.
    loop_lag_interval: float = 0.5
    loop_lag_fail: float = 1.0
    # A cheap store round trip this often, so a database that went away shows
    # up in /readyz even while nobody writes.
    store_check_interval: float = 5.0
    # Hocuspocus-protocol endpoint (Tiptap's HocuspocusProvider).
    hocuspocus_path: str = "/hocuspocus"
    # Hooks as an import string "package.module:attribute".
    hooks: str = ""
    # Serve the demo editor at /demo/{room} (collab/demo); off by default.
    demo: bool = False
    instance_id: str = field(default_factory=_instance_id)

    def __post_init__(self) -> None:
        if self.log_format not in ("text", "json"):
            raise ConfigError("COLLAB_LOG_FORMAT must be 'text' or 'json'")
        for name in ("port", "workers", "max_frame_bytes", "max_room_name",
                     "outbound_queue_frames", "outbound_queue_bytes", "compact_threshold",
                     "auth_queue_frames", "auth_queue_bytes"):
            if getattr(self, name) <= 0 and name != "port":
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be positive")
        if not 0 <= self.port <= 65535:
            raise ConfigError("COLLAB_PORT must be between 0 and 65535")
        for name in ("health_path", "ready_path", "metrics_path", "hocuspocus_path"):
            if not getattr(self, name).startswith("/"):
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must start with '/'")
        if self.fanout_window < 0:
            raise ConfigError("COLLAB_FANOUT_WINDOW must not be negative")
        for name in ("loop_lag_interval", "loop_lag_fail", "store_check_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be positive")
        if self.flush_max_wait < self.flush_debounce:
            raise ConfigError("COLLAB_FLUSH_MAX_WAIT must be >= COLLAB_FLUSH_DEBOUNCE")

    @property
    def reserved_paths(self) -> frozenset[str]:
        """Paths (without the leading '/') that are not room names."""
        paths = [self.health_path, self.ready_path, self.metrics_path, self.hocuspocus_path]
        if self.demo:
            paths.append("/demo")
        return frozenset(p.strip("/") for p in paths)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from ``COLLAB_*`` variables, then explicit overrides."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key in environ:
                values[f.name] = parse_value(key, f.type, environ[key])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def parse_value(key: str, type_name: Any, raw: str) -> Any:
    """Convert one environment string to the field's type, naming it on error."""
    kind = type_name if isinstance(type_name, str) else type_name.__name__
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}={raw!r} is not a valid {kind}") from exc
    return raw
