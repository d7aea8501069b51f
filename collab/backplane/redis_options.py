"""Redis connection options, and the plain-words cause of a Redis failure.

The Fargate incident (DESIGN.md §2): a Redis extension reached a TLS Redis
without its AUTH token and the failure surfaced only as sockets closing with
1005. :func:`explain` turns what redis-py raises into the sentence an
operator needs ("AUTH failed", "TLS certificate not trusted: set the CA",
"the port speaks TLS: use rediss://", "connection refused"), used in every
log line and in ``/readyz``.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
from typing import Any

from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoPermissionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..config import RedisSettings
from ..errors import ConfigError


class RedisOptions(RedisSettings):
    """:class:`~collab.config.RedisSettings` made into redis-py's arguments.
    Unlike the settings, it needs a URL: it exists only when Redis is used."""

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> RedisOptions:
        return cls(**dataclasses.asdict(settings))

    def __post_init__(self) -> None:
        if not self.url:
            raise ConfigError("COLLAB_REDIS_URL is not set")
        super().__post_init__()

    def connection_kwargs(
        self, *, host: str | None = None, port: int | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for ``redis.asyncio.ConnectionPool`` (to the
        URL's host, or to ``host:port``, a cluster node).

        redis-py's own retries and reconnects are off (a ``Retry`` of no
        attempts on no errors): the backplane reconnects itself, with backoff
        and jitter, and must see every failure to report it.
        """
        kwargs: dict[str, Any] = dict(parse_url(self.url))
        if host is not None and port is not None:
            kwargs.update(host=host, port=port)
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password
        if self.tls:
            kwargs["connection_class"] = SSLConnection
            for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
                value = getattr(self, key)
                if value:
                    kwargs[key] = value
        kwargs.update(
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.socket_timeout,
            retry=Retry(NoBackoff(), 0, supported_errors=()),
            health_check_interval=0,
        )
        return kwargs

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.asyncio.cluster.RedisCluster``: the
        same TLS, AUTH and timeouts; the URL's host is the startup node (the
        configuration endpoint); a cluster has only database 0."""
        kwargs = self.connection_kwargs()
        kwargs.pop("db", None)
        if kwargs.pop("connection_class", None) is not None:
            kwargs["ssl"] = True
        return kwargs

    def describe(self) -> str:
        """For log lines: where, TLS or not, which user, which CA."""
        kw = self.connection_kwargs()
        bits = [self.safe_url, "TLS" if self.tls else "plain (no TLS)"]
        bits.append(f"user {kw['username']}" if kw.get("username") else "default user")
        bits.append("with password" if kw.get("password") else "no password")
        if self.tls:
            bits.append(f"CA {kw['ssl_ca_certs']}" if kw.get("ssl_ca_certs") else "system CA store")
            if kw.get("ssl_certfile"):
                bits.append("client certificate")
        return ", ".join(bits)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def explain(exc: BaseException, options: RedisOptions) -> str:
    """One sentence naming the real cause of a Redis failure (no secrets)."""
    chain = _chain(exc)
    text = " | ".join(str(e) for e in chain)
    upper = text.upper()
    where = f"{options.safe_url} ({options.address})"

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(AuthenticationError) or "WRONGPASS" in upper or "INVALID USERNAME-PASSWORD" in upper:
        if "HELLO MUST BE CALLED" in upper or "NOAUTH" in upper:
            return (
                f"AUTH failed: Redis requires a password and none was sent to {where}; "
                f"set it in COLLAB_REDIS_URL or COLLAB_REDIS_PASSWORD ({exc})"
            )
        return (
            f"AUTH failed: wrong password or ACL username for {where}; check "
            f"COLLAB_REDIS_URL / COLLAB_REDIS_USERNAME / COLLAB_REDIS_PASSWORD ({exc})"
        )
    if "CLUSTER MODE IS NOT ENABLED" in upper or "CLUSTER SUPPORT DISABLED" in upper:
        return (
            f"not a cluster: {where} is a single Redis (cluster mode disabled), but "
            "COLLAB_REDIS_CLUSTER is set; point COLLAB_REDIS_URL at the cluster's "
            "configuration endpoint, or unset COLLAB_REDIS_CLUSTER"
        )
    if "CLUSTERDOWN" in upper or "SLOTNOTCOVERED" in upper or "NOT COVERED" in upper:
        return (
            f"the cluster behind {where} is down or does not serve every slot right now "
            f"(a failover in progress?) [{_last(chain)}]"
        )
    if has(NoPermissionError) or "NOPERM" in upper:
        return f"ACL denied: the Redis user may not run pub/sub at {where} ({exc})"
    if "CERTIFICATE_VERIFY_FAILED" in upper:
        return (
            f"TLS certificate verification failed (CERTIFICATE_VERIFY_FAILED) at {where}: "
            "the server certificate is not trusted; set the CA file (ssl_ca_certs= in "
            f"COLLAB_REDIS_URL or COLLAB_REDIS_SSL_CA_CERTS) [{_last(chain)}]"
        )
    if "CERTIFICATE_REQUIRED" in upper or "CERTIFICATE REQUIRED" in upper:
        return (
            f"TLS client certificate required by {where}; set COLLAB_REDIS_SSL_CERTFILE and "
            f"COLLAB_REDIS_SSL_KEYFILE (or ssl_certfile=/ssl_keyfile= in the URL) "
            f"[{_last(chain)}]"
        )
    if "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER_FAILURE" in upper:
        return (
            f"TLS handshake failed at {where}: the port does not speak TLS; use redis:// "
            f"or the TLS port [{_last(chain)}]"
        )
    if has(FileNotFoundError) and options.tls:
        return f"TLS file not found for {where}: {_last(chain)}"
    if (
        has(ConnectionResetError)
        or "CONNECTION RESET" in upper
        or (not options.tls and "CONNECTION CLOSED BY SERVER" in upper)
    ):
        if not options.tls:
            return (
                f"connection reset by {where} during the handshake: the port probably "
                "expects TLS (plain connection to a TLS port); use rediss:// with the CA "
                f"[{_last(chain)}]"
            )
        if not (options.ssl_certfile or "ssl_certfile=" in options.url):
            # TLS 1.3: the server checks the client certificate after the
            # handshake; its alert often loses the race with the reset.
            return (
                f"connection reset by {where} after the TLS handshake: the server probably "
                "requires a TLS client certificate and none is configured (set "
                "COLLAB_REDIS_SSL_CERTFILE and COLLAB_REDIS_SSL_KEYFILE) "
                f"[{_last(chain)}]"
            )
        return f"connection reset by {where} [{_last(chain)}]"
    if has(ConnectionRefusedError) or "CONNECTION REFUSED" in upper or "ERROR 111 " in upper:
        return f"unreachable: connection refused at {where} (nothing listening) [{_last(chain)}]"
    if has(socket.gaierror):
        return f"unreachable: host name of {where} does not resolve [{_last(chain)}]"
    if has(RedisTimeoutError, TimeoutError):
        return (
            f"timed out talking to {where} after {options.socket_timeout:g} s: the server "
            f"is hung or the network path is dead [{_last(chain)}]"
        )
    if has(ssl.SSLError):
        return f"TLS error at {where}: {_last(chain)}"
    if has(OSError) and any(getattr(e, "errno", None) in (101, 113) for e in chain):
        return f"unreachable: no route to {where} [{_last(chain)}]"
    return f"{type(exc).__name__} at {where}: {exc}"


def _last(chain: list[BaseException]) -> str:
    """The innermost error, which carries the OS/TLS detail."""
    inner = chain[-1]
    return f"{type(inner).__name__}: {inner}"
