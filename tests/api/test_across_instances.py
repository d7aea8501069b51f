"""Two ``collab serve`` processes on one TLS + AUTH Redis: the API of
instance A reaches the sockets that instance B holds, by connection id and by
room (the backplane's control channel), and A's writes reach B's clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from collab.client import ApiClient
from collab.errors import ApiError
from tests.scaleout.helpers import T_MS, instances, js_client
from tests.scaleout.test_instances import ACL_PASSWORD, ACL_USER, AUTH_TOKEN, redis_env

from .helpers import API_KEY

pytestmark = pytest.mark.anyio


async def test_instance_a_reaches_connections_held_by_instance_b(
    tmp_path: Path, redis_factory
) -> None:
    server = redis_factory(tls=True, password=AUTH_TOKEN, users={ACL_USER: ACL_PASSWORD})
    env = {**redis_env(server, client_cert=False), "COLLAB_API_KEYS": API_KEY}
    async with instances(tmp_path, 2, env) as (a, b), js_client(tmp_path) as js:
        await js.call("connect_hocuspocus", handle="h", url=f"{b.ws_url}/hocuspocus", name="shared")
        await js.call("connect", handle="y", url=b.ws_url, room="shared")
        api_a = ApiClient(f"{a.url}/api", API_KEY)
        api_b = ApiClient(f"{b.url}/api", API_KEY)
        [room] = (await api_b.rooms())["rooms"]
        assert (await api_a.rooms())["rooms"] == []  # A holds none of these sockets

        # A stateless message to one connection id, pushed on A, held by B.
        reached = {}
        for conn_id in room["connections"]:
            try:
                reached[conn_id] = await api_a.message_connection(conn_id, f"to {conn_id}")
            except ApiError as exc:
                assert exc.status == 409  # the y-websocket socket: no stateless messages
                y_conn = conn_id
        [(h_conn, answer)] = reached.items()
        assert (answer["instance"], answer["delivered"]) == ("inst-1", 1)
        assert (await js.event(event="stateless", handle="h"))["payload"] == f"to {h_conn}"

        # A room message from A, where the room is not even loaded.
        sent = await api_a.message_room("shared", "room-wide")
        assert (sent["delivered_here"], sent["relayed"]) == (0, True)
        assert (await js.event(event="stateless", handle="h"))["payload"] == "room-wide"

        # A write on A reaches B's clients.
        await api_a.edit_text("shared", "written on A")
        for handle in ("h", "y"):
            await js.call("wait_text", handle=handle, equals="written on A", timeout_ms=T_MS)

        # Close by id, from A, with the caller's code: B closes it.
        closed = await api_a.close_connection(y_conn, code=4403, reason="access revoked")
        assert closed["instance"] == "inst-1"
        close = await js.event(event="close", handle="y", timeout=10)
        assert (close["code"], close["reason"]) == (4403, "access revoked")

        # An id nobody holds: no instance acknowledges it.
        with pytest.raises(ApiError) as unknown:
            await api_a.close_connection("c-ffffff-999")
        assert unknown.value.status == 404

        # Everyone out of the room, everywhere, from A.
        mark = js.mark()
        await api_a.close_room("shared")
        close = await js.event(event="close", handle="h", since=mark, timeout=10)
        assert close["code"] == 4205
