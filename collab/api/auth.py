"""Who may call the HTTP API: a bearer API key, or an admin JWT.

``Authorization: Bearer <token>`` carries either one of ``COLLAB_API_KEYS``
or, when JWT auth is configured, a token with ``"admin": true``. Keys are
compared in constant time against *every* configured key (no early exit),
over their SHA-256 digests so that even the length of a key does not show in
the timing: which key matched, if any, never does. Neither a key nor a token
is ever logged; a refusal names the problem only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from ..access.tokens import TokenRejected, TokenVerifier
from ..errors import ApiError


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class ApiAuth:
    """Checks the bearer token of one request."""

    def __init__(self, keys: Sequence[str], verifier: TokenVerifier | None) -> None:
        self._digests = tuple(_digest(k) for k in keys)
        self._verifier = verifier

    def __repr__(self) -> str:  # never the keys
        return f"ApiAuth(keys={len(self._digests)}, jwt={self._verifier is not None})"

    @property
    def enabled(self) -> bool:
        """The API is served only when some credential can pass."""
        return bool(self._digests) or self._verifier is not None

    def check(self, authorization: str | None) -> None:
        """Raise :class:`ApiError` 401 (no or a bad credential) or 403 (a valid
        JWT without the admin claim)."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "a bearer token is required")
        if self._matches_key(token):
            return
        if self._verifier is None:
            raise ApiError(401, "unauthorized", "invalid API key")
        try:
            grant = self._verifier.verify(token)
        except TokenRejected as exc:
            raise ApiError(401, "unauthorized", exc.reason) from None
        if not grant.admin:
            raise ApiError(403, "forbidden", "the token has no admin claim")

    def _matches_key(self, token: str) -> bool:
        presented = _digest(token)
        matched = False
        for digest in self._digests:
            # `|` and not `or`: every key is compared, whichever matched.
            matched = hmac.compare_digest(presented, digest) | matched
        return matched
