"""collab.access.tokens: real tokens minted with PyJWT in the test, checked
by the verifier: what passes, what is 4401 (and why), what is 4403."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from collab.access import (
    LEEWAY_SECONDS,
    RoomForbidden,
    TokenProblem,
    TokenRejected,
    TokenVerifier,
)
from collab.errors import CloseCode, ConfigError

from ..support.tokens import (
    TEST_SECRET,
    claims_for,
    ec_keys,
    hmac_token,
    mint,
    rsa_keys,
    unsigned_token,
)

OTHER_SECRET = "another-secret-that-is-long-enough-0123456789"


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[bytes, str]:
    return rsa_keys()


@pytest.fixture(scope="module")
def ec_pair() -> tuple[bytes, str]:
    return ec_keys()


def hs() -> TokenVerifier:
    return TokenVerifier.from_secret(TEST_SECRET)


def rejected(verifier: TokenVerifier, token: str | None) -> TokenProblem:
    with pytest.raises(TokenRejected) as info:
        verifier.verify(token)
    assert info.value.code == CloseCode.UNAUTHORIZED == 4401
    assert token is None or token == "" or token not in info.value.reason
    return info.value.problem


def test_hs256_token_grants_its_rooms() -> None:
    token = mint(TEST_SECRET, rooms=["team/*", "public/**"], sub="user-7")
    grant = hs().authorize(token, "team/notes")
    assert grant.allows("public/a/b") and not grant.allows("team/a/b")
    assert grant.readonly is False and grant.admin is False
    assert grant.subject == "user-7"
    assert grant.rooms.texts == ("team/*", "public/**")
    assert grant.claims["sub"] == "user-7"


def test_readonly_and_admin_claims() -> None:
    grant = hs().verify(mint(TEST_SECRET, rooms=["a"], readonly=True, admin=True))
    assert grant.readonly is True and grant.admin is True


def test_valid_token_for_another_room_is_4403() -> None:
    token = mint(TEST_SECRET, rooms=["team/*"])
    with pytest.raises(RoomForbidden) as info:
        hs().authorize(token, "other/notes")
    assert info.value.code == CloseCode.FORBIDDEN == 4403
    assert info.value.reason == "token does not grant this room"


def test_token_without_rooms_claim_grants_no_room() -> None:
    grant = hs().verify(mint(TEST_SECRET))
    assert not grant.allows("") and not grant.allows("a")
    with pytest.raises(RoomForbidden):
        grant.check_room("a")


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token(token: str | None) -> None:
    assert rejected(hs(), token) is TokenProblem.MISSING


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "bm90anNvbg.e30.c2ln", "x" * 9000])
def test_malformed_token(token: str) -> None:
    assert rejected(hs(), token) is TokenProblem.MALFORMED


def test_expired_token() -> None:
    token = mint(TEST_SECRET, rooms=["a"], expires_in=-60)
    assert rejected(hs(), token) is TokenProblem.EXPIRED


def test_clock_skew_leeway_is_small() -> None:
    assert 0 < LEEWAY_SECONDS <= 10
    # Expired 2 s ago: within the leeway, still accepted ...
    grant = hs().verify(mint(TEST_SECRET, rooms=["a"], expires_in=-2))
    assert not grant.expired()
    # ... and a grant's expiry is where verify starts refusing.
    assert grant.expires_at is not None
    assert grant.expired(grant.expires_at + LEEWAY_SECONDS)
    assert not grant.expired(grant.expires_at + LEEWAY_SECONDS - 0.5)
    assert grant.seconds_left(grant.expires_at) == pytest.approx(LEEWAY_SECONDS)


def test_token_without_exp_is_refused() -> None:
    token = jwt.encode(claims_for(rooms=["a"], expires_in=None), TEST_SECRET, algorithm="HS256")
    assert rejected(hs(), token) is TokenProblem.CLAIMS


def test_not_yet_valid_token() -> None:
    token = mint(TEST_SECRET, rooms=["a"], nbf=int(time.time()) + 3600)
    assert rejected(hs(), token) is TokenProblem.NOT_YET_VALID


def test_wrong_secret_is_a_bad_signature() -> None:
    assert rejected(hs(), mint(OTHER_SECRET, rooms=["a"])) is TokenProblem.BAD_SIGNATURE


def test_tampered_payload_is_a_bad_signature() -> None:
    header, _, signature = mint(TEST_SECRET, rooms=["a"]).split(".")
    forged = mint(OTHER_SECRET, rooms=["**"], admin=True).split(".")[1]
    assert rejected(hs(), f"{header}.{forged}.{signature}") is TokenProblem.BAD_SIGNATURE


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_never_accepted(alg: str) -> None:
    token = unsigned_token(claims_for(rooms=["**"]), alg=alg)
    assert rejected(hs(), token) is TokenProblem.ALGORITHM


def test_other_hmac_algorithm_is_not_in_the_list() -> None:
    token = hmac_token(TEST_SECRET.encode(), claims_for(rooms=["a"]), alg="HS512")
    assert rejected(hs(), token) is TokenProblem.ALGORITHM


def test_rs256_token_with_public_key(rsa_pair: tuple[bytes, str]) -> None:
    private, public = rsa_pair
    verifier = TokenVerifier.from_public_key(public)
    assert verifier.algorithms == ("RS256",)
    grant = verifier.authorize(mint(private, rooms=["docs/**"], algorithm="RS256"), "docs/x/y")
    assert grant.allows("docs/z")


def test_es256_token_with_public_key(ec_pair: tuple[bytes, str]) -> None:
    private, public = ec_pair
    verifier = TokenVerifier.from_public_key(public)
    assert verifier.algorithms == ("ES256",)
    assert verifier.verify(mint(private, rooms=["a"], algorithm="ES256")).allows("a")


def test_es384_key_takes_es384_only() -> None:
    private, public = ec_keys(ec.SECP384R1())
    verifier = TokenVerifier.from_public_key(public)
    assert verifier.algorithms == ("ES384",)
    assert verifier.verify(mint(private, rooms=["a"], algorithm="ES384")).allows("a")


def test_token_signed_by_another_rsa_key(rsa_pair: tuple[bytes, str]) -> None:
    other_private, _ = rsa_keys()
    verifier = TokenVerifier.from_public_key(rsa_pair[1])
    token = mint(other_private, rooms=["a"], algorithm="RS256")
    assert rejected(verifier, token) is TokenProblem.BAD_SIGNATURE


def test_hs256_signed_with_the_public_key_is_refused(rsa_pair: tuple[bytes, str]) -> None:
    """Algorithm confusion: the attacker knows the public key and uses its PEM
    as an HMAC secret; a verifier that let the header pick HS256 would accept."""
    public = rsa_pair[1]
    verifier = TokenVerifier.from_public_key(public)
    for key in (public.encode(), public.strip().encode()):
        token = hmac_token(key, claims_for(rooms=["**"], admin=True))
        assert rejected(verifier, token) is TokenProblem.ALGORITHM


def test_rs256_token_against_a_secret_is_refused(rsa_pair: tuple[bytes, str]) -> None:
    token = mint(rsa_pair[0], rooms=["a"], algorithm="RS256")
    assert rejected(hs(), token) is TokenProblem.ALGORITHM


def test_es256_token_against_an_rsa_key(
    rsa_pair: tuple[bytes, str], ec_pair: tuple[bytes, str]
) -> None:
    verifier = TokenVerifier.from_public_key(rsa_pair[1])
    token = mint(ec_pair[0], rooms=["a"], algorithm="ES256")
    assert rejected(verifier, token) is TokenProblem.ALGORITHM


def test_audience_and_issuer() -> None:
    verifier = TokenVerifier.from_secret(TEST_SECRET, audience="collab", issuer="https://app")
    good = mint(TEST_SECRET, rooms=["a"], aud="collab", iss="https://app")
    assert verifier.verify(good).allows("a")
    assert verifier.verify(
        mint(TEST_SECRET, rooms=["a"], aud=["x", "collab"], iss="https://app")
    ).allows("a")
    cases = {
        TokenProblem.AUDIENCE: [
            mint(TEST_SECRET, rooms=["a"], aud="other", iss="https://app"),
            mint(TEST_SECRET, rooms=["a"], iss="https://app"),
        ],
        TokenProblem.ISSUER: [
            mint(TEST_SECRET, rooms=["a"], aud="collab", iss="https://evil"),
            mint(TEST_SECRET, rooms=["a"], aud="collab"),
        ],
    }
    for problem, tokens in cases.items():
        for token in tokens:
            assert rejected(verifier, token) is problem


def test_token_with_an_audience_needs_the_audience_configured() -> None:
    token = mint(TEST_SECRET, rooms=["a"], aud="collab")
    assert rejected(hs(), token) is TokenProblem.AUDIENCE


@pytest.mark.parametrize(
    "claims",
    [
        {"rooms": "team/*"},  # a string, not a list
        {"rooms": [1, 2]},
        {"rooms": ["a/***"]},  # ambiguous pattern
        {"rooms": [""]},
        {"rooms": ["a"], "readonly": "yes"},
        {"rooms": ["a"], "admin": 1},
        {"rooms": ["a"], "sub": 42},
    ],
)
def test_malformed_custom_claims_are_4401(claims: dict[str, object]) -> None:
    token = mint(TEST_SECRET, **claims)  # type: ignore[arg-type]
    assert rejected(hs(), token) is TokenProblem.CLAIMS


def test_reasons_are_fixed_and_short() -> None:
    for problem in TokenProblem:
        reason = TokenRejected(problem).reason
        assert reason.startswith("token ") and len(reason.encode()) <= 123


# -- keys and settings ---------------------------------------------------------


def test_short_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="COLLAB_JWT_SECRET") as info:
        TokenVerifier.from_secret("short-secret")
    assert "short-secret" not in str(info.value)


def test_pem_as_secret_is_refused(rsa_pair: tuple[bytes, str]) -> None:
    with pytest.raises(ConfigError, match="COLLAB_JWT_SECRET holds a PEM"):
        TokenVerifier.from_secret(rsa_pair[1])


def test_public_key_as_one_line_with_escaped_newlines(rsa_pair: tuple[bytes, str]) -> None:
    private, public = rsa_pair
    verifier = TokenVerifier.from_public_key(public.strip().replace("\n", "\\n"))
    assert verifier.verify(mint(private, rooms=["a"], algorithm="RS256")).allows("a")


def test_bad_public_keys_are_refused_naming_the_variable(rsa_pair: tuple[bytes, str]) -> None:
    private = rsa_pair[0].decode()
    weak = rsa_keys(1024)[1]
    cases = {
        "/run/secrets/jwt.pem": "not a file path",
        private: "private key",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n": "not a PEM public key",
        weak: "at least 2048 bits",
        ec_keys(ec.SECP521R1())[1]: "only RSA, EC P-256 and EC P-384",
    }
    for value, message in cases.items():
        with pytest.raises(ConfigError, match=message) as info:
            TokenVerifier.from_public_key(value)
        assert "COLLAB_JWT_PUBLIC_KEY" in str(info.value)
        assert "AAAA" not in str(info.value) and "MII" not in str(info.value)


def test_verifier_repr_has_no_key() -> None:
    assert TEST_SECRET not in repr(hs()) and "HS256" in repr(hs())


def test_none_is_never_an_allowed_algorithm() -> None:
    with pytest.raises(ValueError):
        TokenVerifier(b"k" * 32, ("HS256", "none"))
    with pytest.raises(ValueError):
        TokenVerifier(b"k" * 32, ())
