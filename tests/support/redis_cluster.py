"""A real Redis Cluster on loopback: 3 primaries + 3 replicas, TLS, a password, an ACL user.

ElastiCache in cluster mode, as the cluster backplane meets it: every node
speaks TLS only (the cluster bus and replication too), the default user has
a password (the AUTH token) and an ACL user exists. The layout is built by
hand (ADDSLOTSRANGE, MEET, REPLICATE) so it is the same every time: node i
(i < 3) is a primary with a third of the slots, node i + 3 its replica.

Faults are the ones an operator or AWS causes: SIGKILL a primary (its
replica takes over after ``cluster-node-timeout``), CLUSTER FAILOVER to a
replica, and moving one slot to another primary the way
``redis-cli --cluster reshard`` does (SETSLOT IMPORTING / MIGRATING,
MIGRATE the keys, SETSLOT NODE everywhere).

Every wait has a deadline and raises :class:`RedisServerError` with what it
saw. Roles change during a module's tests: look nodes up by slot and role
(:meth:`owner`, :meth:`replica_of`), never by index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.crc import key_slot

from .certs import CertBundle
from .ports import LOOPBACK, free_port
from .redis_server import RedisServer, RedisServerError

__all__ = ["RedisCluster"]

SLOTS = 16384


class RedisCluster:
    def __init__(
        self,
        directory: Path,
        *,
        certs: CertBundle,
        password: str,
        users: Mapping[str, str],
        primaries: int = 3,
        node_timeout_ms: int = 1000,
    ) -> None:
        self.directory = Path(directory)
        self.certs = certs
        self.password = password
        self.users = dict(users)
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[RedisServer] = []
        for i in range(2 * primaries):
            config = [
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                f"cluster-node-timeout {node_timeout_ms}",
                f"cluster-port {free_port()}",
                f"cluster-announce-ip {LOOPBACK}",
                # The cluster bus and replication always ask the connecting
                # node for a certificate: nodes present the client one.
                "tls-cluster yes",
                "tls-replication yes",
                f"tls-client-cert-file {certs.client_cert}",
                f"tls-client-key-file {certs.client_key}",
                f"masterauth {password}",
                # A replica must take over even right after a resync.
                "cluster-replica-validity-factor 0",
            ]
            self.nodes.append(
                RedisServer(
                    self.directory / f"node-{i}",
                    tls=True,
                    certs=certs,
                    password=password,
                    users=users,
                    extra_config=config,
                )
            )
        self._primaries = primaries
        self._clients: dict[int, redis.Redis] = {}

    # -- addresses ------------------------------------------------------------

    def url(
        self,
        *,
        username: str | None = None,
        password: Any = None,
        node: int = 0,
        tls_params: bool = True,
    ) -> str:
        """A ``rediss://`` URL of one node (the configuration endpoint's part)."""
        kwargs: dict[str, Any] = {"username": username, "tls_params": tls_params}
        if password is not None:
            kwargs["password"] = password
        return self.nodes[node].url(**kwargs)

    def client(self, node: RedisServer) -> redis.Redis:
        """One cached client per node (it reconnects after a restart)."""
        if node.port not in self._clients:
            self._clients[node.port] = node.client()
        return self._clients[node.port]

    def _id(self, node: RedisServer) -> str:
        return bytes(self.client(node).execute_command("CLUSTER MYID")).decode()

    def owner(self, channel_or_slot: str | int) -> RedisServer:
        """The running primary that owns the slot of a key or channel (or a slot)."""
        slot = (
            channel_or_slot
            if isinstance(channel_or_slot, int)
            else key_slot(channel_or_slot.encode())
        )
        for node in self.running():
            for start, end, primary, *_ in self.client(node).execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return self._by_port(int(primary[1]))
        raise RedisServerError(f"no running node knows the owner of slot {slot}")

    def replica_of(self, primary: RedisServer) -> RedisServer:
        pid = self._id(primary)
        for node in self.running():
            info = self.client(node).info("replication")
            if (
                info.get("role") == "slave"
                and self._id(node) != pid
                and int(info.get("master_port", 0)) == primary.port
            ):
                return node
        raise RedisServerError(f"no replica of the primary on port {primary.port}")

    def primaries(self) -> list[RedisServer]:
        return [n for n in self.running() if self.client(n).info("replication")["role"] == "master"]

    def running(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.running]

    def _by_port(self, port: int) -> RedisServer:
        for node in self.nodes:
            if node.port == port:
                return node
        raise RedisServerError(f"no node on port {port}")

    # -- lifecycle --------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        first = self.client(self.nodes[0])
        for node in self.nodes[1:]:
            first.execute_command("CLUSTER MEET", LOOPBACK, node.port, _bus_port(node))
        per = SLOTS // self._primaries
        for i in range(self._primaries):
            end = SLOTS - 1 if i == self._primaries - 1 else (i + 1) * per - 1
            self.client(self.nodes[i]).execute_command("CLUSTER ADDSLOTSRANGE", i * per, end)
        self._until(
            lambda: all(
                len(self.client(n).execute_command("CLUSTER NODES")) == len(self.nodes)
                for n in self.nodes
            ),
            timeout,
            "every node knows every other",
        )
        for i in range(self._primaries):
            primary_id = self._id(self.nodes[i])
            replica = self.nodes[i + self._primaries]
            self._until(
                lambda r=replica, p=primary_id: _try(
                    lambda: self.client(r).execute_command("CLUSTER REPLICATE", p)
                ),
                timeout,
                "the replica accepts its primary",
            )
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every running node says cluster_state:ok, agrees on the slots, and
        every running replica has caught up with its primary's link."""

        def healthy() -> bool:
            views = set()
            for node in self.running():
                info = self.client(node).execute_command("CLUSTER INFO")
                if info.get("cluster_state") != "ok":
                    return False
                views.add(_slot_view(self.client(node).execute_command("CLUSTER SLOTS")))
                repl = self.client(node).info("replication")
                if repl["role"] == "slave" and repl.get("master_link_status") != "up":
                    return False
            return len(views) == 1

        self._until(healthy, timeout, "the cluster is healthy and every node agrees")

    def stop(self) -> None:
        self._clients.clear()  # closed by each node's stop()
        for node in self.nodes:
            node.stop()

    def kill(self, node: RedisServer) -> None:
        node.kill()

    def restart(self, node: RedisServer, timeout: float = 30.0) -> None:
        """Start a killed node again on its port; it rejoins from nodes.conf."""
        node.restart()
        self.wait_healthy(timeout)

    def wait_promoted(self, replica: RedisServer, timeout: float = 30.0) -> None:
        self._until(
            lambda: self.client(replica).info("replication")["role"] == "master",
            timeout,
            f"the replica on port {replica.port} is promoted",
        )
        self.wait_healthy(timeout)

    def failover(self, replica: RedisServer, timeout: float = 30.0) -> None:
        """CLUSTER FAILOVER on a replica: a planned, lossless switch of roles."""
        self.client(replica).execute_command("CLUSTER FAILOVER")
        self.wait_promoted(replica, timeout)

    def move_slot(self, slot: int, target: RedisServer, timeout: float = 30.0) -> None:
        """Reshard one slot to ``target`` (a primary) as ``redis-cli --cluster
        reshard`` does, keys included."""
        source = self.owner(slot)
        if source is target:
            raise RedisServerError(f"slot {slot} is already on port {target.port}")
        src, dst = self.client(source), self.client(target)
        src_id, dst_id = self._id(source), self._id(target)
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            src.execute_command(
                "MIGRATE", LOOPBACK, target.port, "", 0, 5000, "AUTH", self.password, "KEYS", *keys
            )
        for node in (target, source, *self.primaries()):
            self.client(node).execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
        self._until(lambda: self.owner(slot) is target, timeout, f"slot {slot} moved")
        self.wait_healthy(timeout)

    def _until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (redis.RedisError, OSError) as exc:
                last = exc
            time.sleep(0.05)  # other processes' state: nothing to await
        logs = "\n".join(f"--- node {n.port} ---\n{n.log_text()[-2000:]}" for n in self.nodes)
        raise RedisServerError(
            f"timed out after {timeout}s waiting until {what} (last error: {last!r})\n{logs}"
        )

    def __enter__(self) -> RedisCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _bus_port(node: RedisServer) -> int:
    for line in node.extra_config:
        if line.startswith("cluster-port "):
            return int(line.split()[1])
    raise RedisServerError("no cluster-port in the node's config")


def _slot_view(slots: Any) -> tuple[tuple[int, int, int], ...]:
    return tuple(sorted((int(s), int(e), int(p[1])) for s, e, p, *_ in slots))


def _try(action: Callable[[], object]) -> bool:
    try:
        action()
    except redis.ResponseError:
        return False  # e.g. the replica does not know the primary yet
    return True
