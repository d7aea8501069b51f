"""The connection gates: a process-wide socket limit and a per-client connect rate.

Both refuse before the upgrade (see :mod:`collab.transport.gates`), so a
storm of reconnecting clients (the AppSync incident reached 80,000 sockets)
costs an HTTP answer each, never a session or a room.

The client key of the rate limit is the socket's peer address. A
``X-Forwarded-For`` header is anyone's to write, so it only counts through
proxies the operator names (``COLLAB_TRUSTED_PROXIES``): a hop count (``1``
behind one ALB, which appends the address it saw) or CIDRs (the nearest
addresses that are proxies are skipped, right to left). A client that sends
its own header then only adds entries left of the one the proxy appended,
which are never read.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Scope

from ..errors import ConfigError
from .gates import Refusal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Buckets kept at once. Past it the least recently seen client's bucket is
# forgotten, so many distinct addresses cost a bounded table, not memory
# without end (a forgotten client starts again with a full burst).
MAX_CLIENTS = 65536


@dataclass(frozen=True, slots=True)
class ClientKey:
    """Which address of a handshake is the client's. ``hops`` trusted
    proxies in front of us, or the ``networks`` proxies connect from."""

    hops: int = 0
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> ClientKey:
        spec = spec.strip()
        if not spec:
            return cls()
        if spec.isdigit():
            return cls(hops=int(spec))
        networks = []
        for part in spec.split(","):
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError as exc:
                raise ConfigError(
                    f"COLLAB_TRUSTED_PROXIES: {part.strip()!r} is neither a hop count nor a CIDR"
                ) from exc
        return cls(networks=tuple(networks))

    def of(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else "-"
        if not self.hops and not self.networks:
            return _bucket_key(peer)
        chain = [*_forwarded(scope), peer]
        if self.hops:
            # [..., client, proxy N, ..., proxy 1 (the peer)]: the client is
            # the address the farthest trusted proxy saw.
            return _bucket_key(chain[max(0, len(chain) - 1 - self.hops)])
        for address in reversed(chain):
            if not self._trusted(address):
                return _bucket_key(address)
        return _bucket_key(chain[0])

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


def _forwarded(scope: Scope) -> list[str]:
    values = [
        v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"x-forwarded-for"
    ]
    return [a.strip() for v in values for a in v.split(",") if a.strip()]


def _bucket_key(address: str) -> str:
    """IPv6 clients are keyed by their /64: one host usually holds a whole
    /64 and could otherwise take a fresh bucket per address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up (rate 0 = no limit)."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def take(self) -> bool:
        if self._rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class ConnectionLimit:
    """HTTP 503 once ``limit`` sockets are open in this process."""

    def __init__(self, limit: int, count: Callable[[], int]) -> None:
        self._limit = limit
        self._count = count

    def admit(self, scope: Scope) -> Refusal | None:
        if self._count() < self._limit:
            return None
        return Refusal(
            503,
            f"connection limit reached ({self._limit} open)",
            "max_connections",
            (("Retry-After", "5"),),
        )


class ConnectRate:
    """A token bucket per client key: ``per_minute`` attempts, ``burst`` at
    once. Every attempt admitted takes a token; past it, HTTP 429 with the
    seconds until the next token in ``Retry-After``."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        key: ClientKey,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._key = key
        self._max_clients = max_clients
        self._clock = clock
        # key -> [tokens, when they were counted]; least recently seen first.
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def admit(self, scope: Scope) -> Refusal | None:
        key = self._key.of(scope)
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_clients:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = [self._burst, now]
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return None
        wait = math.ceil((1.0 - bucket[0]) / self._rate) if self._rate > 0 else 60
        return Refusal(
            429,
            "too many connection attempts; retry later",
            "connect_rate",
            (("Retry-After", str(max(1, wait))),),
        )
