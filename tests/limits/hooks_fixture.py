"""Hooks for the limits tests (COLLAB_HOOKS=tests.limits.hooks_fixture:hooks):
token "hang" never gets an answer, token "boom" raises; on_change raises on
every update of rooms under "raise/" and hangs on those under "hang/"."""

from __future__ import annotations

import asyncio

from collab import AuthRequest, AuthResult, Hooks
from collab.hooks import ChangeEvent


async def authenticate(request: AuthRequest) -> AuthResult:
    if request.token == "hang":
        await asyncio.Event().wait()
    if request.token == "boom":
        raise RuntimeError("the auth service is down")
    return AuthResult.allow()


async def on_change(event: ChangeEvent) -> None:
    if event.room.startswith("raise/"):
        raise RuntimeError("webhook failed")
    if event.room.startswith("hang/"):
        await asyncio.Event().wait()


hooks = Hooks(authenticate=authenticate, on_change=on_change)
