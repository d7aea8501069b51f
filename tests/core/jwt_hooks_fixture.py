"""An authenticate hook for a server that also checks JWTs
(COLLAB_HOOKS=tests.core.jwt_hooks_fixture:hooks): it only ever sees tokens
the built-in check accepted, and decides by room."""

from __future__ import annotations

from collab import AuthRequest, AuthResult, Hooks


async def authenticate(request: AuthRequest) -> AuthResult:
    if request.room == "locked":
        return AuthResult.deny("locked by the application")
    return AuthResult.allow(readonly=request.room == "archive")


hooks = Hooks(authenticate=authenticate)
