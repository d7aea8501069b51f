"""tests/support/postgres_server.py against Debian's real PostgreSQL 15."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.postgres_server import PostgresServer

pytestmark = pytest.mark.anyio


def test_select_1_through_the_url(postgres_server: PostgresServer) -> None:
    url = postgres_server.url
    assert url == f"postgresql://collab:collab@127.0.0.1:{postgres_server.port}/collab"
    with psycopg.connect(url, connect_timeout=10) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select current_user, current_database()").fetchone() == (
            "collab",
            "collab",
        )
        version = conn.execute("show server_version_num").fetchone()
        assert version is not None and version[0].startswith("15")


async def test_async_psycopg_on_a_fresh_database(postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url, connect_timeout=10) as conn:
        await conn.execute("create table t (x int)")
        await conn.execute("insert into t values (41)")
        cur = await conn.execute("select x + 1 from t")
        assert await cur.fetchone() == (42,)


def test_each_test_gets_an_empty_database(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        assert conn.execute("select to_regclass('public.t')").fetchone() == (None,)


def test_wrong_password_is_refused(postgres_server: PostgresServer) -> None:
    bad = postgres_server.url.replace("collab:collab@", "collab:wrong@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad, connect_timeout=10)


def test_own_cluster_starts_and_is_removed() -> None:
    with PostgresServer(user="other", password="p w'\"", database="db-with-dash") as pg:
        root = pg.root
        assert root is not None and root.is_dir()
        with pg.connect() as conn:
            assert conn.execute("select current_user").fetchone() == ("other",)
        assert pg.url.startswith("postgresql://other:")
    assert not root.exists()
