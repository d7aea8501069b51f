"""One frozen :class:`Settings` object, read once at start-up.

Every field is settable as ``COLLAB_<FIELD>`` in the environment and, for the
CLI, as ``--<field>`` (dashes for underscores). No other module reads the
environment: they are handed a ``Settings``. A malformed value raises
:class:`~collab.errors.ConfigError` naming the variable.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from .access.origins import OriginPolicy
from .access.tokens import TokenVerifier
from .errors import ConfigError

ENV_PREFIX = "COLLAB_"
# Settings nested in Settings, and the prefix of their variables and flags.
NESTED = {"redis": "redis_"}
STORE_SCHEMES = ("memory", "sqlite", "postgresql", "postgres")
MIN_API_KEY_CHARS = 16


def _instance_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class RedisSettings:
    """The Redis backplane (``COLLAB_REDIS_*``; unset url = single instance).
    TLS options may also be given in the URL query (``ssl_ca_certs=...``), as
    redis-py accepts them; these separate settings override the URL."""

    url: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    ssl_ca_certs: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    prefix: str = "collab"
    backoff_base: float = 0.2
    backoff_cap: float = 10.0
    # Connect/read timeout of Redis commands; a pub/sub link silent this long
    # past a PING is declared dead (a hung server keeps TCP open).
    socket_timeout: float = 5.0
    # A payload larger than this goes through a short-lived key, with a small
    # pointer published instead (backplane/redis_blobs.py); keep it well below
    # Redis's pub/sub output-buffer limit (8 MB soft, 32 MB hard by default).
    max_message_bytes: int = 1024 * 1024
    # A Redis Cluster (ElastiCache cluster mode): the URL is its configuration
    # endpoint; rooms use sharded pub/sub (backplane/redis_cluster.py).
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.max_message_bytes <= 0:
            raise ConfigError("COLLAB_REDIS_MAX_MESSAGE_BYTES must be positive")
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            raise ConfigError(
                "COLLAB_REDIS_BACKOFF_BASE must be > 0 and <= COLLAB_REDIS_BACKOFF_CAP"
            )
        if self.socket_timeout <= 0:
            raise ConfigError("COLLAB_REDIS_SOCKET_TIMEOUT must be positive")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("COLLAB_REDIS_SSL_CERTFILE and COLLAB_REDIS_SSL_KEYFILE go together")
        if self.url:
            self._check_url()
        if self.cluster:
            self._check_cluster()

    def _check_cluster(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            # The room channel's hash tag starts the name: a brace in the
            # prefix would cut it short and put every room in one slot.
            raise ConfigError(
                "COLLAB_REDIS_PREFIX may not contain { or } with COLLAB_REDIS_CLUSTER"
            )
        if self.url and urlsplit(self.url).path.strip("/") not in ("", "0"):
            raise ConfigError(
                "a Redis Cluster has only database 0: COLLAB_REDIS_URL must end "
                "in /0 (or no database) with COLLAB_REDIS_CLUSTER"
            )

    def _check_url(self) -> None:
        from redis.asyncio.connection import parse_url

        scheme = urlsplit(self.url).scheme.lower()
        if scheme not in ("redis", "rediss"):
            raise ConfigError(
                f"COLLAB_REDIS_URL must start with redis:// or rediss://, got {self.safe_url!r}"
            )
        try:
            parse_url(self.url)
        except ValueError as exc:
            raise ConfigError(f"COLLAB_REDIS_URL {self.safe_url!r}: {exc}") from exc

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme.lower() == "rediss"

    @property
    def safe_url(self) -> str:
        """The URL without its password (and without the query)."""
        try:
            parts = urlsplit(self.url)
            host, port = parts.hostname or "", parts.port
        except ValueError:
            return "<unparsable URL>"
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{port}" if port else "")
        if parts.username:
            netloc = f"{parts.username}:***@{netloc}"
        elif parts.password:
            netloc = f":***@{netloc}"
        return f"{parts.scheme}://{netloc}{parts.path}"

    @property
    def address(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"

    @property
    def db(self) -> int:
        """The database index of the URL (``/1``; 0 when absent)."""
        path = urlsplit(self.url).path.strip("/")
        return int(path) if path.isdigit() else 0

    @property
    def namespace(self) -> str:
        """What every channel name starts with: the prefix and the database
        index. Pub/sub ignores the database, so without the index two
        deployments on ``/0`` and ``/1`` of one Redis would share rooms."""
        return f"{self.prefix}:{self.db}"


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
    # ... and a room of N peers at most once per N / fanout_frame_rate seconds
    # when that is longer (frames per second per room; 0 = the window alone).
    fanout_frame_rate: int = 7_500
    # Redis backplane: COLLAB_REDIS_URL, COLLAB_REDIS_PASSWORD, ...
    redis: RedisSettings = field(default_factory=RedisSettings)
    # Limits.
    max_frame_bytes: int = 4 * 1024 * 1024
    max_room_name: int = 256
    outbound_queue_frames: int = 1024
    outbound_queue_bytes: int = 16 * 1024 * 1024
    # Hocuspocus: frames a socket may send for documents still authenticating
    # (queued until the authenticate hook answers), in count and in bytes.
    auth_queue_frames: int = 64
    auth_queue_bytes: int = 8 * 1024 * 1024
    # ... and over all sockets of the process (1013 past it), and how long a
    # Hocuspocus socket may go without any authenticated document (4408).
    auth_queue_total_bytes: int = 64 * 1024 * 1024
    auth_timeout: float = 10.0
    # Abuse bounds (README "Limits"). Documents: an update that would take a
    # room past this many bytes is refused with 1009 (0 = no limit).
    max_document_bytes: int = 64 * 1024 * 1024
    # Hocuspocus: documents one socket may have open or opening (1008 past it).
    max_documents_per_socket: int = 64
    # Awareness: bytes of one client's JSON state (1009), client ids one
    # connection may introduce (1008).
    max_awareness_state_bytes: int = 64 * 1024
    max_awareness_clients: int = 8
    # Sockets per process (HTTP 503 past it; 0 = no limit).
    max_connections: int = 10000
    # Connect attempts per client key per minute, token bucket of
    # `connect_burst` (HTTP 429 + Retry-After past it; 0 = no limit).
    connect_rate: float = 300.0
    connect_burst: int = 60
    # Whose X-Forwarded-For counts for the client key: "" = nobody (the peer
    # address is the key), a hop count ("1" behind one ALB), or CIDRs.
    trusted_proxies: str = ""
    # Frames per second one socket may send, token bucket of `frame_burst`
    # (1008 past it; 0 = no limit).
    frame_rate: float = 1000.0
    frame_burst: int = 2000
    # Pings from one client answered per second (the rest are not answered).
    ping_answer_rate: float = 2.0
    # A hook call that has not answered after this long has failed.
    hook_timeout: float = 10.0
    # Every store call (load, append, compact, check, close) is given up after
    # this long; also the PostgreSQL statement_timeout.
    store_timeout: float = 10.0
    # Unstored updates kept per room while the store is failing; past this
    # they are replaced by one snapshot of the room's document.
    store_buffer_bytes: int = 16 * 1024 * 1024
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
    # Access control (README "Authentication"). Origins: comma-separated,
    # "*" and "https://*.example.com" allowed; unset = no Origin check.
    allowed_origins: str = ""
    # Refuse handshakes without an Origin header (non-browser clients).
    require_origin: bool = False
    # JWT keys: an HS256 secret, or PEM text (not a path) of an RSA/EC public
    # key. Secrets: kept out of repr, logs and /readyz.
    jwt_secret: str = field(default="", repr=False)
    jwt_public_key: str = field(default="", repr=False)
    jwt_audience: str = ""
    jwt_issuer: str = ""
    # A second, private port serving /healthz, /metrics and the detailed
    # /readyz (0 = off: all on the public port). When set, the public port
    # has no /metrics and its /readyz gives the status alone.
    metrics_port: int = 0
    # Serve the demo editor at /demo/{room} (collab/demo); off by default.
    demo: bool = False
    # The HTTP API (collab/api; README "HTTP API"): on when API keys or JWT
    # auth are set. Keys: comma-separated bearer tokens, several so they can
    # rotate; secrets, kept out of repr, logs and /readyz.
    api_path: str = "/api"
    api_keys: str = field(default="", repr=False)
    instance_id: str = field(default_factory=_instance_id)

    def __post_init__(self) -> None:
        if self.log_format not in ("text", "json"):
            raise ConfigError("COLLAB_LOG_FORMAT must be 'text' or 'json'")
        for name in (
            "port",
            "workers",
            "max_frame_bytes",
            "max_room_name",
            "outbound_queue_frames",
            "outbound_queue_bytes",
            "compact_threshold",
            "auth_queue_frames",
            "auth_queue_bytes",
            "auth_queue_total_bytes",
            "max_documents_per_socket",
            "max_awareness_state_bytes",
            "max_awareness_clients",
            "connect_burst",
            "frame_burst",
            "store_buffer_bytes",
        ):
            if getattr(self, name) <= 0 and name != "port":
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be positive")
        if not 0 <= self.port <= 65535:
            raise ConfigError("COLLAB_PORT must be between 0 and 65535")
        for name in ("health_path", "ready_path", "metrics_path", "hocuspocus_path", "api_path"):
            if not getattr(self, name).startswith("/"):
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must start with '/'")
        if self.fanout_window < 0:
            raise ConfigError("COLLAB_FANOUT_WINDOW must not be negative")
        if self.fanout_frame_rate < 0:
            raise ConfigError("COLLAB_FANOUT_FRAME_RATE must not be negative")
        for name in (
            "max_document_bytes",
            "max_connections",
            "connect_rate",
            "frame_rate",
            "ping_answer_rate",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must not be negative")
        for name in (
            "loop_lag_interval",
            "loop_lag_fail",
            "store_check_interval",
            "hook_timeout",
            "store_timeout",
            "auth_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be positive")
        if self.flush_max_wait < self.flush_debounce:
            raise ConfigError("COLLAB_FLUSH_MAX_WAIT must be >= COLLAB_FLUSH_DEBOUNCE")
        scheme = self.store_url.split(":", 1)[0].lower() if ":" in self.store_url else ""
        if scheme not in STORE_SCHEMES:
            raise ConfigError(
                f"COLLAB_STORE_URL scheme {scheme!r} is not one of memory://, "
                "sqlite:///, postgresql://"
            )
        check_hooks_spec(self.hooks)
        from .transport.limits import ClientKey

        ClientKey.parse(self.trusted_proxies)  # a bad entry stops the start, named
        self._check_access()

    def _check_access(self) -> None:
        """Parse the access settings once, so a mistake stops the start."""
        if not OriginPolicy.parse(self.allowed_origins).checking and self.require_origin:
            raise ConfigError("COLLAB_REQUIRE_ORIGIN=true needs COLLAB_ALLOWED_ORIGINS")
        TokenVerifier.from_settings(self)
        if any(len(key) < MIN_API_KEY_CHARS for key in self.api_key_list):
            raise ConfigError(
                f"COLLAB_API_KEYS: each key must be at least {MIN_API_KEY_CHARS} "
                "characters (a bearer token guessed is the whole API)"
            )
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError("COLLAB_METRICS_PORT must be between 0 and 65535")
        if self.metrics_port and self.metrics_port == self.port:
            raise ConfigError("COLLAB_METRICS_PORT must differ from COLLAB_PORT")

    @property
    def reserved_paths(self) -> frozenset[str]:
        """Paths (without the leading '/') that are not room names."""
        paths = [
            self.health_path,
            self.ready_path,
            self.metrics_path,
            self.hocuspocus_path,
            self.api_path,
        ]
        if self.demo:
            paths.append("/demo")
        return frozenset(p.strip("/") for p in paths)

    @property
    def api_key_list(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.api_keys.split(",") if k.strip())

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from ``COLLAB_*`` variables, then explicit overrides
        (flat names: ``redis_url=`` sets ``redis.url``)."""
        values: dict[str, Any] = {}
        for name, type_name in flat_fields():
            key = ENV_PREFIX + name.upper()
            if key in environ:
                values[name] = parse_value(key, type_name, environ[key])
        values.update({k: v for k, v in overrides.items() if v is not None})
        nested: dict[str, Any] = {}
        for attr, prefix in NESTED.items():
            sub = {k[len(prefix) :]: values.pop(k) for k in list(values) if k.startswith(prefix)}
            nested[attr] = _NESTED_TYPES[attr](**sub)
        return cls(**values, **nested)


_NESTED_TYPES: dict[str, type[Any]] = {"redis": RedisSettings}


def flat_fields() -> Iterator[tuple[str, Any]]:
    """Every setting as (flat name, type): nested ones as ``redis_url`` etc."""
    for f in fields(Settings):
        if f.name in NESTED:
            for sub in fields(_NESTED_TYPES[f.name]):
                yield NESTED[f.name] + sub.name, sub.type
        else:
            yield f.name, f.type


def check_hooks_spec(spec: str) -> None:
    """Raise ConfigError unless ``spec`` is empty or ``package.module:attribute``
    (importing it is left to :func:`collab.hooks.load_hooks`)."""
    module_name, _, attr = spec.partition(":")
    if spec and (not module_name or not attr):
        raise ConfigError(f"COLLAB_HOOKS={spec!r}: expected 'package.module:attribute'")


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
