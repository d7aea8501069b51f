"""Document persistence behind the small :class:`Store` interface."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Store, squash


def store_from_url(
    url: str, *, compact_threshold: int = 100, statement_timeout: float = 0
) -> Store:
    """Pick the implementation from the URL scheme (``statement_timeout``:
    PostgreSQL's, in seconds; 0 = none)."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        store: Store = PostgresStore(url, statement_timeout=statement_timeout)
        return store
    raise ConfigError(
        f"COLLAB_STORE_URL scheme {scheme!r} is not one of memory://, sqlite:///, postgresql://"
    )


__all__ = ["Store", "squash", "store_from_url"]
