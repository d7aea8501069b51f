"""Fixtures for the tests of tests/support (the shared test infrastructure)."""

from __future__ import annotations

import pytest

from tests.support.fixtures import certs, postgres_server, postgres_url, redis_factory

__all__ = ["anyio_backend", "certs", "postgres_server", "postgres_url", "redis_factory"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
