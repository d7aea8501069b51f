"""Built-in JWT verification (PyJWT): a token in, a typed :class:`Grant` out.

One :class:`TokenVerifier` per process, built from the settings::

    verifier = TokenVerifier.from_settings(settings)   # None: JWT auth is off
    try:
        grant = verifier.authorize(token, room)        # verify + room check
    except TokenRejected as exc:    # close exc.code (4401), reason exc.reason
        ...
    except RoomForbidden as exc:    # close exc.code (4403), reason exc.reason
        ...
    grant.readonly                  # a read-only connection
    grant.expired(time.time())      # Hocuspocus: block new documents once True

Keys and algorithms (an explicit allow-list, decided by the key, never by the
token's header):

- ``COLLAB_JWT_SECRET``: HS256 only; at least 32 bytes (RFC 7518 §3.2).
- ``COLLAB_JWT_PUBLIC_KEY``: PEM text of a public key, as Secrets Manager or a
  ``.env`` file injects it (a one-line value with ``\\n`` escapes is accepted).
  RSA (2048 bits or more) -> RS256; EC P-256 -> ES256; EC P-384 -> ES384.
  A file path or a private key is refused at start.
- Only one of the two. ``alg: none`` is never accepted, and neither is an
  HS* token against a public key (algorithm confusion: signing with the
  public key as an HMAC secret), since HS* is not in a public key's list.

Claims:

- ``exp`` is required: a token without one would be a permanent key. It is
  checked with :data:`LEEWAY_SECONDS` of clock skew (also for ``nbf`` and
  ``iat``); keep the issuer's clock on NTP.
- ``aud`` / ``iss`` are checked when ``COLLAB_JWT_AUDIENCE`` /
  ``COLLAB_JWT_ISSUER`` are set. (PyJWT also refuses a token carrying ``aud``
  when no audience is configured: set the audience if your issuer adds one.)
- ``rooms``: list of room patterns (:mod:`collab.access.patterns`); absent
  means no room. ``readonly``, ``admin``: optional booleans. ``sub``: shown
  as the grant's subject.

Every failure is a fixed reason string (never the token, never PyJWT's text):
:class:`TokenRejected` (4401) carries a :class:`TokenProblem` for metrics;
:class:`RoomForbidden` (4403) means the token is good but not for this room.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..errors import ConfigError, Forbidden, Unauthorized
from .patterns import RoomPatterns

# Clock skew allowed on exp/nbf/iat, in seconds: small, since both the issuer
# and collab are servers with synchronised clocks.
LEEWAY_SECONDS = 5.0
# A token longer than this is refused unparsed (it rides in every handshake).
MAX_TOKEN_BYTES = 8192
MIN_SECRET_BYTES = 32
MIN_RSA_BITS = 2048


class TokenProblem(StrEnum):
    """Why a token was refused; safe as a metric label."""

    MISSING = "missing"
    MALFORMED = "malformed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_SIGNATURE = "bad_signature"
    ALGORITHM = "algorithm"
    AUDIENCE = "audience"
    ISSUER = "issuer"
    CLAIMS = "claims"


_REASONS = {
    TokenProblem.MISSING: "token missing",
    TokenProblem.MALFORMED: "token malformed",
    TokenProblem.EXPIRED: "token expired",
    TokenProblem.NOT_YET_VALID: "token not yet valid",
    TokenProblem.BAD_SIGNATURE: "token signature invalid",
    TokenProblem.ALGORITHM: "token algorithm not allowed",
    TokenProblem.AUDIENCE: "token audience invalid",
    TokenProblem.ISSUER: "token issuer invalid",
    TokenProblem.CLAIMS: "token claims invalid",
}


class TokenRejected(Unauthorized):
    """Missing, malformed, expired or badly signed: close 4401."""

    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(_REASONS[problem])
        self.problem = problem


class RoomForbidden(Forbidden):
    """A valid token whose ``rooms`` do not include this room: close 4403."""

    def __init__(self) -> None:
        super().__init__("token does not grant this room")


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token allows."""

    rooms: RoomPatterns
    readonly: bool = False
    admin: bool = False
    # The exp claim (Unix seconds, wall clock: compare with time.time()).
    expires_at: float | None = None
    subject: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def allows(self, room: str) -> bool:
        return self.rooms.matches(room)

    def check_room(self, room: str) -> None:
        if not self.allows(room):
            raise RoomForbidden()

    def seconds_left(self, now: float | None = None) -> float:
        """Until the token stops verifying (leeway included); inf without exp."""
        if self.expires_at is None:
            return float("inf")
        return self.expires_at + LEEWAY_SECONDS - (time.time() if now is None else now)

    def expired(self, now: float | None = None) -> bool:
        """The same instant at which :meth:`TokenVerifier.verify` starts refusing it."""
        return self.seconds_left(now) <= 0


class JwtSettings(Protocol):
    """The part of :class:`collab.config.Settings` this module reads."""

    @property
    def jwt_secret(self) -> str: ...
    @property
    def jwt_public_key(self) -> str: ...
    @property
    def jwt_audience(self) -> str: ...
    @property
    def jwt_issuer(self) -> str: ...


class TokenVerifier:
    """Verifies tokens against one key with a fixed list of algorithms."""

    def __init__(
        self, key: Any, algorithms: tuple[str, ...], *, audience: str = "", issuer: str = ""
    ) -> None:
        if not algorithms or any(a.lower() == "none" for a in algorithms):
            raise ValueError("an explicit, non-'none' algorithm list is required")
        self._key = key
        self.algorithms = algorithms
        self.audience = audience
        self.issuer = issuer

    def __repr__(self) -> str:  # never the key
        return f"TokenVerifier(algorithms={self.algorithms!r})"

    @classmethod
    def from_secret(cls, secret: str, *, audience: str = "", issuer: str = "") -> TokenVerifier:
        if secret.lstrip().startswith("-----BEGIN"):
            raise ConfigError(
                "COLLAB_JWT_SECRET holds a PEM key: "
                "put a public key in COLLAB_JWT_PUBLIC_KEY instead"
            )
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"COLLAB_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes "
                "(HS256 needs a 256-bit key)"
            )
        return cls(secret.encode(), ("HS256",), audience=audience, issuer=issuer)

    @classmethod
    def from_public_key(cls, pem: str, *, audience: str = "", issuer: str = "") -> TokenVerifier:
        key, algorithms = _load_public_key(pem)
        return cls(key, algorithms, audience=audience, issuer=issuer)

    @classmethod
    def from_settings(cls, settings: JwtSettings) -> TokenVerifier | None:
        """The verifier the settings ask for, or None when JWT auth is off."""
        audience, issuer = settings.jwt_audience, settings.jwt_issuer
        if settings.jwt_secret and settings.jwt_public_key:
            raise ConfigError("set COLLAB_JWT_SECRET or COLLAB_JWT_PUBLIC_KEY, not both")
        if settings.jwt_secret:
            return cls.from_secret(settings.jwt_secret, audience=audience, issuer=issuer)
        if settings.jwt_public_key:
            return cls.from_public_key(settings.jwt_public_key, audience=audience, issuer=issuer)
        for name, value in (("COLLAB_JWT_AUDIENCE", audience), ("COLLAB_JWT_ISSUER", issuer)):
            if value:
                raise ConfigError(
                    f"{name} is set but neither COLLAB_JWT_SECRET nor "
                    "COLLAB_JWT_PUBLIC_KEY is: no token would be checked"
                )
        return None

    def verify(self, token: str | None) -> Grant:
        """Check signature, algorithm and claims; raise :class:`TokenRejected`."""
        if not token:
            raise TokenRejected(TokenProblem.MISSING)
        if len(token.encode("utf-8", "replace")) > MAX_TOKEN_BYTES:
            raise TokenRejected(TokenProblem.MALFORMED)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected(TokenProblem.MALFORMED) from exc
        if header.get("alg") not in self.algorithms:
            raise TokenRejected(TokenProblem.ALGORITHM)
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=list(self.algorithms),
                audience=self.audience or None,
                issuer=self.issuer or None,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp"], "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(_problem_of(exc)) from exc
        return _grant(claims)

    def authorize(self, token: str | None, room: str) -> Grant:
        """:meth:`verify`, then the room check (:class:`RoomForbidden`)."""
        grant = self.verify(token)
        grant.check_room(room)
        return grant


def _problem_of(exc: jwt.PyJWTError) -> TokenProblem:
    # Order matters: InvalidSignatureError is a DecodeError.
    if isinstance(exc, jwt.ExpiredSignatureError):
        return TokenProblem.EXPIRED
    if isinstance(exc, jwt.ImmatureSignatureError):
        return TokenProblem.NOT_YET_VALID
    if isinstance(exc, jwt.InvalidSignatureError):
        return TokenProblem.BAD_SIGNATURE
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return TokenProblem.ALGORITHM
    if isinstance(exc, jwt.InvalidAudienceError):
        return TokenProblem.AUDIENCE
    if isinstance(exc, jwt.InvalidIssuerError):
        return TokenProblem.ISSUER
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return {"aud": TokenProblem.AUDIENCE, "iss": TokenProblem.ISSUER}.get(
            exc.claim, TokenProblem.CLAIMS
        )
    if isinstance(exc, jwt.DecodeError):
        return TokenProblem.MALFORMED
    return TokenProblem.CLAIMS


def _grant(claims: dict[str, Any]) -> Grant:
    rooms = claims.get("rooms", [])
    readonly = claims.get("readonly", False)
    admin = claims.get("admin", False)
    subject = claims.get("sub")
    if (
        not isinstance(rooms, list)
        or not isinstance(readonly, bool)
        or not isinstance(admin, bool)
        or not isinstance(subject, str | None)
    ):
        raise TokenRejected(TokenProblem.CLAIMS)
    try:
        patterns = RoomPatterns.parse(rooms)
    except ValueError as exc:
        raise TokenRejected(TokenProblem.CLAIMS) from exc
    return Grant(
        patterns,
        readonly=readonly,
        admin=admin,
        expires_at=float(claims["exp"]),
        subject=subject,
        claims=claims,
    )


def _load_public_key(pem: str) -> tuple[Any, tuple[str, ...]]:
    text = pem.strip()
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")  # one-line PEM from a .env file
    if not text.startswith("-----BEGIN"):
        raise ConfigError(
            "COLLAB_JWT_PUBLIC_KEY must be PEM text "
            "(-----BEGIN PUBLIC KEY-----...), not a file path"
        )
    if "PRIVATE KEY" in text.splitlines()[0]:
        raise ConfigError(
            "COLLAB_JWT_PUBLIC_KEY holds a private key: give collab the public key only"
        )
    try:
        key = load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigError("COLLAB_JWT_PUBLIC_KEY is not a PEM public key") from exc
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(
                f"COLLAB_JWT_PUBLIC_KEY: an RSA key needs at least {MIN_RSA_BITS} bits"
            )
        return key, ("RS256",)
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = {"secp256r1": "ES256", "secp384r1": "ES384"}.get(key.curve.name)
        if algorithm is not None:
            return key, (algorithm,)
    raise ConfigError(
        "COLLAB_JWT_PUBLIC_KEY: only RSA, EC P-256 and EC P-384 keys "
        "are supported (RS256, ES256, ES384)"
    )
