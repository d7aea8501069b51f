"""Real Redis servers for the backplane tests (tests/support fixtures)."""

from __future__ import annotations

from tests.support.fixtures import certs, redis_cluster, redis_factory

__all__ = ["certs", "redis_cluster", "redis_factory"]
