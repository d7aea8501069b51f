"""A typed Python client of the HTTP API (README "HTTP API"), standard library only.

    api = ApiClient("http://127.0.0.1:1234/api", token=os.environ["COLLAB_API_KEY"])
    await api.edit_text("notes", "hello from a bot\\n")
    body = await api.get_json("notes", {"text": "text"})

Each call runs one blocking ``urllib`` request in a worker thread, so the
runtime needs no HTTP client library (the server side needs none either).
A refusal raises :class:`~collab.errors.ApiError` with the server's status,
error code and message. Room names are sent with '/' as %2F, which the
server reads unambiguously whatever the name's last segment.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from .errors import ApiError

JSONObject = dict[str, Any]


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._ssl = ssl_context

    def __repr__(self) -> str:  # never the token
        return f"ApiClient({self.base_url!r})"

    # -- rooms ------------------------------------------------------------------------

    async def rooms(self, *, include_stored: bool = False) -> JSONObject:
        return await self._json("GET", "/rooms", {"all": "1"} if include_stored else None)

    async def get_update(self, room: str, state_vector: bytes | None = None) -> bytes:
        """The document as one Yjs update (only what ``state_vector`` lacks)."""
        query = {"state_vector": base64.b64encode(state_vector).decode()} if state_vector else None
        _, body = await self._call("GET", _room(room), query)
        return body

    async def get_json(self, room: str, types: Mapping[str, str]) -> JSONObject:
        """Named fields as JSON: ``types={"body": "text", "meta": "map"}``."""
        spec = ",".join(f"{name}:{kind}" for name, kind in types.items())
        return await self._json("GET", _room(room, "json"), {"types": spec})

    async def apply_update(self, room: str, update: bytes) -> JSONObject:
        return await self._json(
            "POST", _room(room, "update"), body=update, content_type="application/octet-stream"
        )

    async def edit_text(
        self,
        room: str,
        text: str,
        *,
        field: str = "text",
        mode: str = "append",
        index: int | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> JSONObject:
        edit: JSONObject = {"text": text, "field": field, "mode": mode}
        if index is not None:
            edit["index"] = index
        if attributes is not None:
            edit["attributes"] = dict(attributes)
        return await self._json("POST", _room(room, "text"), body=edit)

    async def message_room(self, room: str, payload: str) -> JSONObject:
        return await self._json("POST", _room(room, "message"), body={"payload": payload})

    async def close_room(self, room: str, *, code: int = 4205, reason: str = "") -> JSONObject:
        return await self._json("DELETE", _room(room, "connections"), _close(code, reason))

    async def delete_room(self, room: str, *, code: int = 4404, reason: str = "") -> JSONObject:
        return await self._json("DELETE", _room(room), _close(code, reason))

    # -- connections ------------------------------------------------------------------

    async def message_connection(self, conn_id: str, payload: str, *, room: str = "") -> JSONObject:
        body: JSONObject = {"payload": payload, **({"room": room} if room else {})}
        return await self._json(
            "POST", f"/connections/{quote(conn_id, safe='')}/message", body=body
        )

    async def close_connection(
        self, conn_id: str, *, code: int = 4205, reason: str = ""
    ) -> JSONObject:
        return await self._json(
            "DELETE", f"/connections/{quote(conn_id, safe='')}", _close(code, reason)
        )

    async def openapi(self) -> JSONObject:
        return await self._json("GET", "/openapi.json")

    # -- transport --------------------------------------------------------------------

    async def _json(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        *,
        body: JSONObject | bytes | None = None,
        content_type: str = "application/json",
    ) -> JSONObject:
        _, data = await self._call(method, path, query, body, content_type)
        value = json.loads(data)
        if not isinstance(value, dict):
            raise ApiError(502, "bad_response", "the server answered with no JSON object")
        return value

    async def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: JSONObject | bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        url = self.base_url + path + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(
            url,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": content_type},
        )
        return await asyncio.to_thread(self._send, request)

    def _send(self, request: urllib.request.Request) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self._ssl
            ) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            exc.close()
            try:
                detail = json.loads(raw)
                error, message = str(detail["error"]), str(detail["message"])
            except (ValueError, KeyError, TypeError):
                error, message = "http_error", raw.decode("utf-8", "replace")[:200]
            raise ApiError(exc.code, error, message) from None


def _room(room: str, action: str = "") -> str:
    return f"/rooms/{quote(room, safe='')}" + (f"/{action}" if action else "")


def _close(code: int, reason: str) -> dict[str, str]:
    return {"code": str(code), **({"reason": reason} if reason else {})}
