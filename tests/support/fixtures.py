"""pytest fixtures over the helpers in this package.

The root conftest enables them for every test module
(``pytest_plugins = ["tests.support.fixtures"]``).

- ``certs``: a fresh CA + server + client certificate (:class:`CertBundle`).
- ``redis_factory``: ``redis_factory(**RedisServer kwargs) -> RedisServer``,
  started; all stopped at teardown. TLS servers get ``certs`` unless given.
- ``redis_cluster``: one 3 + 3 Redis Cluster (TLS, password, ACL user
  ``app``) for the whole session; tests that kill or fail over nodes leave it
  healthy again (roles may have changed: look nodes up by slot).
- ``postgres_server``: one PostgreSQL 15 for the whole session.
- ``postgres_url``: a fresh, empty database on it for each test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .certs import CertBundle, make_certs
from .postgres_server import PostgresServer
from .redis_cluster import RedisCluster
from .redis_server import RedisServer

__all__ = ["certs", "postgres_server", "postgres_url", "redis_cluster", "redis_factory"]

CLUSTER_PASSWORD = "cluster-default-secret"
CLUSTER_USERS = {"app": "cluster-app-secret"}

_db_counter = itertools.count(1)


@pytest.fixture
def certs(tmp_path: Path) -> CertBundle:
    return make_certs(tmp_path / "pki")


@pytest.fixture
def redis_factory(tmp_path: Path, certs: CertBundle) -> Iterator[Callable[..., RedisServer]]:
    servers: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        if kwargs.get("tls"):
            kwargs.setdefault("certs", certs)
        server = RedisServer(tmp_path / f"redis-{len(servers) + 1}", **kwargs)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in reversed(servers):
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    directory = tmp_path_factory.mktemp("redis-cluster")
    with RedisCluster(
        directory,
        certs=make_certs(directory / "pki"),
        password=CLUSTER_PASSWORD,
        users=CLUSTER_USERS,
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database(f"test_{next(_db_counter)}")
