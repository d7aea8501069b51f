"""The access settings of collab.config: parsed from COLLAB_* variables,
checked at start (errors name the variable), secrets kept out of repr."""

from __future__ import annotations

import pytest

from collab.access import OriginPolicy, TokenVerifier
from collab.config import Settings
from collab.errors import ConfigError

from ..support.tokens import TEST_SECRET, mint, rsa_keys


def test_defaults_check_nothing() -> None:
    s = Settings()
    assert (
        s.allowed_origins,
        s.require_origin,
        s.jwt_secret,
        s.jwt_public_key,
        s.jwt_audience,
        s.jwt_issuer,
        s.metrics_port,
    ) == ("", False, "", "", "", "", 0)
    assert not OriginPolicy.parse(s.allowed_origins).checking
    assert TokenVerifier.from_settings(s) is None


def test_from_env() -> None:
    s = Settings.from_env(
        {
            "COLLAB_ALLOWED_ORIGINS": "https://app.example.com",
            "COLLAB_REQUIRE_ORIGIN": "true",
            "COLLAB_JWT_SECRET": TEST_SECRET,
            "COLLAB_JWT_AUDIENCE": "collab",
            "COLLAB_JWT_ISSUER": "https://app.example.com",
            "COLLAB_METRICS_PORT": "9100",
        }
    )
    assert s.require_origin is True and s.metrics_port == 9100
    verifier = TokenVerifier.from_settings(s)
    assert verifier is not None
    token = mint(TEST_SECRET, rooms=["a"], aud="collab", iss="https://app.example.com")
    assert verifier.authorize(token, "a").allows("a")
    assert not OriginPolicy.parse(s.allowed_origins).allows(None, s.require_origin)


def test_public_key_from_env() -> None:
    private, public = rsa_keys()
    s = Settings.from_env({"COLLAB_JWT_PUBLIC_KEY": public})
    verifier = TokenVerifier.from_settings(s)
    assert verifier is not None and verifier.algorithms == ("RS256",)
    assert verifier.verify(mint(private, rooms=["r"], algorithm="RS256")).allows("r")


def test_secrets_stay_out_of_repr() -> None:
    _, public = rsa_keys()
    body = public.splitlines()[1]
    for s in (Settings(jwt_secret=TEST_SECRET), Settings(jwt_public_key=public)):
        text = repr(s) + str(s)
        assert TEST_SECRET not in text and body not in text
        assert "jwt_secret" not in text and "jwt_public_key" not in text


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"COLLAB_ALLOWED_ORIGINS": "https://x.test/path"}, "COLLAB_ALLOWED_ORIGINS"),
        ({"COLLAB_REQUIRE_ORIGIN": "true"}, "COLLAB_REQUIRE_ORIGIN"),
        ({"COLLAB_REQUIRE_ORIGIN": "maybe"}, "COLLAB_REQUIRE_ORIGIN"),
        ({"COLLAB_JWT_SECRET": "too-short-a-secret"}, "COLLAB_JWT_SECRET"),
        ({"COLLAB_JWT_PUBLIC_KEY": "/etc/collab/jwt.pem"}, "COLLAB_JWT_PUBLIC_KEY"),
        ({"COLLAB_JWT_SECRET": TEST_SECRET, "COLLAB_JWT_PUBLIC_KEY": "x"}, "COLLAB_JWT_SECRET"),
        ({"COLLAB_JWT_AUDIENCE": "collab"}, "COLLAB_JWT_AUDIENCE"),
        ({"COLLAB_JWT_ISSUER": "https://app"}, "COLLAB_JWT_ISSUER"),
        ({"COLLAB_METRICS_PORT": "70000"}, "COLLAB_METRICS_PORT"),
        ({"COLLAB_METRICS_PORT": "abc"}, "COLLAB_METRICS_PORT"),
        ({"COLLAB_METRICS_PORT": "1234"}, "COLLAB_METRICS_PORT"),
    ],
)
def test_mistakes_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable) as info:
        Settings.from_env(env)
    assert "too-short-a-secret" not in str(info.value)


def test_metrics_port_may_be_anything_but_the_public_port() -> None:
    assert Settings(port=0, metrics_port=0).metrics_port == 0
    assert Settings(port=1234, metrics_port=9100).metrics_port == 9100
