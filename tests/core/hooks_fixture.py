"""Hooks given by import string (COLLAB_HOOKS=tests.core.hooks_fixture:hooks)."""

from __future__ import annotations

from collab import AuthRequest, AuthResult, Hooks


async def authenticate(request: AuthRequest) -> AuthResult:
    if request.token == "reader":
        return AuthResult.allow(readonly=True, user="reader")
    if request.token == "writer":
        return AuthResult.allow(user="writer")
    if not request.token:
        return AuthResult.deny("a token is required", code=4401)
    return AuthResult.deny(f"token {request.token!r} may not open {request.room!r}")


hooks = Hooks(authenticate=authenticate)
