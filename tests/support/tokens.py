"""Mint JWTs for tests, the way an application backend would (PyJWT).

::

    token = mint(TEST_SECRET, rooms=["team/*"])                # HS256, 5 min
    token = mint(private_pem, rooms=["**"], algorithm="RS256", readonly=True)
    url = with_token("ws://127.0.0.1:1234/team/notes", token)

Also the hostile ones, built by hand because PyJWT refuses to make them:
:func:`unsigned_token` (``alg: none``) and :func:`hmac_token` (any bytes as
an HMAC key, e.g. a public key's PEM: the algorithm-confusion attack).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# 32+ bytes, as collab requires for HS256. Tests only; compose has its own.
TEST_SECRET = "test-secret-for-collab-unit-tests-0123456789"


def claims_for(
    *,
    rooms: list[str] | None = None,
    readonly: bool | None = None,
    admin: bool | None = None,
    expires_in: float | None = 300,
    **extra: Any,
) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"iat": now, **extra}
    if expires_in is not None:
        claims["exp"] = now + int(expires_in)
    if rooms is not None:
        claims["rooms"] = rooms
    if readonly is not None:
        claims["readonly"] = readonly
    if admin is not None:
        claims["admin"] = admin
    return claims


def mint(
    key: str | bytes,
    *,
    algorithm: str = "HS256",
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A signed token; keyword arguments as :func:`claims_for`."""
    return jwt.encode(claims_for(**claims), key, algorithm=algorithm, headers=headers)


def with_token(url: str, token: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}token={token}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def enc(obj: dict[str, Any]) -> str:
        return _b64(json.dumps(obj, separators=(",", ":")).encode())

    return f"{enc(header)}.{enc(claims)}"


def unsigned_token(claims: dict[str, Any], alg: str = "none") -> str:
    """``alg: none`` with an empty signature."""
    return _segments({"alg": alg, "typ": "JWT"}, claims) + "."


def hmac_token(key: bytes, claims: dict[str, Any], alg: str = "HS256") -> str:
    """HMAC-signed with arbitrary key bytes (PyJWT refuses a PEM as a secret)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = _segments({"alg": alg, "typ": "JWT"}, claims)
    signature = hmac.new(key, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{_b64(signature)}"


def _pems(private: Any) -> tuple[bytes, str]:
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem.decode("ascii")


def rsa_keys(bits: int = 2048) -> tuple[bytes, str]:
    """(private PEM for :func:`mint`, public PEM for COLLAB_JWT_PUBLIC_KEY)."""
    return _pems(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def ec_keys(curve: ec.EllipticCurve | None = None) -> tuple[bytes, str]:
    return _pems(ec.generate_private_key(curve or ec.SECP256R1()))
