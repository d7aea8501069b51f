"""Hooks for the observability tests (``COLLAB_HOOKS=tests.observability.hooks_fixture:hooks``).

Token "bad" is unauthorized (4401), "forbidden" is forbidden (4403), "boom"
makes the hook raise (the session must deny with 1011, not let it in);
anything else, or no token, is allowed.
"""

from __future__ import annotations

from collab import AuthRequest, AuthResult, Hooks
from collab.errors import CloseCode


async def authenticate(request: AuthRequest) -> AuthResult:
    if request.token == "bad":
        return AuthResult.deny("invalid token", CloseCode.UNAUTHORIZED)
    if request.token == "forbidden":
        return AuthResult.deny("no access to this document", CloseCode.FORBIDDEN)
    if request.token == "boom":
        raise RuntimeError("the auth service is down")
    return AuthResult.allow()


hooks = Hooks(authenticate=authenticate)
