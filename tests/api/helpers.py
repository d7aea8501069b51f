"""Shared pieces of the HTTP API tests: an in-process server with the API on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pycrdt import Doc, Text

from collab import Settings, create_app
from collab.client import ApiClient
from collab.stores import Store
from tests.support.servers import RunningApp, run_app

API_KEY = "test-api-key-0123456789abcdef"
OTHER_KEY = "rotated-api-key-fedcba9876543210"


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {
        "store_url": "memory://",
        "room_grace": 0.3,
        "flush_debounce": 0.05,
        "flush_max_wait": 0.2,
        "api_keys": f"{API_KEY}, {OTHER_KEY}",
    }
    base.update(kw)
    return Settings(**base)


@asynccontextmanager
async def serve(
    app_settings: Settings | None = None, *, store: Store | None = None, **kw: Any
) -> AsyncIterator[RunningApp]:
    app = create_app(app_settings or settings(), store=store, **kw)
    async with run_app(app, ws_ping_interval=None) as srv:
        srv.app = app  # type: ignore[attr-defined]
        yield srv


def api(srv: RunningApp, key: str = API_KEY) -> ApiClient:
    return ApiClient(f"{srv.url}/api", key)


def text_update(text: str, field: str = "text") -> bytes:
    doc: Doc[Any] = Doc()
    doc.get(field, type=Text).insert(0, text)
    return doc.get_update()


def text_in(update: bytes, field: str = "text") -> str:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return str(doc.get(field, type=Text))
