"""RedisOptions and explain(): pure, no server."""

from __future__ import annotations

import ssl

import pytest
from redis.asyncio.connection import SSLConnection
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from collab.backplane.redis_options import RedisOptions, explain
from collab.config import Settings
from collab.errors import ConfigError


def test_url_query_tls_options_and_credentials() -> None:
    opts = RedisOptions(
        "rediss://app:s3cret@cache.example:6380/2?ssl_ca_certs=/ca.pem"
        "&ssl_certfile=/c.pem&ssl_keyfile=/c.key"
    )
    kw = opts.connection_kwargs()
    assert kw["connection_class"] is SSLConnection
    assert (kw["host"], kw["port"], kw["db"]) == ("cache.example", 6380, 2)
    assert (kw["username"], kw["password"]) == ("app", "s3cret")
    assert (kw["ssl_ca_certs"], kw["ssl_certfile"], kw["ssl_keyfile"]) == (
        "/ca.pem",
        "/c.pem",
        "/c.key",
    )
    assert opts.safe_url == "rediss://app:***@cache.example:6380/2"
    assert "s3cret" not in opts.describe()


def test_settings_override_the_url() -> None:
    settings = Settings.from_env(
        {
            "COLLAB_REDIS_URL": "rediss://:old@h:6379/0?ssl_ca_certs=/old.pem",
            "COLLAB_REDIS_USERNAME": "svc",
            "COLLAB_REDIS_PASSWORD": "new",
            "COLLAB_REDIS_SSL_CA_CERTS": "/new.pem",
            "COLLAB_REDIS_SOCKET_TIMEOUT": "1.5",
        }
    )
    kw = RedisOptions.from_settings(settings.redis).connection_kwargs()
    assert (kw["username"], kw["password"], kw["ssl_ca_certs"]) == ("svc", "new", "/new.pem")
    assert kw["socket_timeout"] == kw["socket_connect_timeout"] == 1.5


def test_plain_url_has_no_tls() -> None:
    kw = RedisOptions("redis://localhost:6379").connection_kwargs()
    assert "connection_class" not in kw
    assert RedisOptions("redis://:pw@localhost").safe_url == "redis://:***@localhost"


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"url": "http://localhost:6379"}, "COLLAB_REDIS_URL"),
        ({"url": "redis://localhost", "backoff_base": 0}, "COLLAB_REDIS_BACKOFF_BASE"),
        ({"url": "redis://localhost", "backoff_cap": 0.01}, "COLLAB_REDIS_BACKOFF_CAP"),
        ({"url": "redis://localhost", "ssl_certfile": "/c.pem"}, "COLLAB_REDIS_SSL_KEYFILE"),
        ({"url": "redis://localhost/0?db=x"}, "COLLAB_REDIS_URL"),
    ],
)
def test_bad_options_name_the_setting(kwargs: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        RedisOptions(**kwargs)  # type: ignore[arg-type]


def _caused(outer: BaseException, inner: BaseException) -> BaseException:
    """``outer`` raised while handling ``inner``, as redis-py does."""
    outer.__context__ = inner
    return outer


TLS = RedisOptions("rediss://:pw@127.0.0.1:6380/0")
PLAIN = RedisOptions("redis://:pw@127.0.0.1:6380/0")


@pytest.mark.parametrize(
    ("options", "exc", "expected"),
    [
        (
            TLS,
            AuthenticationError("invalid username-password pair or user is disabled."),
            "AUTH failed: wrong password",
        ),
        (
            TLS,
            AuthenticationError("HELLO must be called with the client already authenticated"),
            "none was sent",
        ),
        (
            TLS,
            _caused(
                RedisConnectionError("Error 1 connecting"),
                ssl.SSLCertVerificationError(
                    1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
                ),
            ),
            "set the CA file",
        ),
        (
            TLS,
            _caused(
                RedisConnectionError("Error while reading"),
                ssl.SSLError(
                    1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required"
                ),
            ),
            "TLS client certificate required",
        ),
        (
            PLAIN,
            _caused(
                RedisConnectionError("Error while reading"),
                ConnectionResetError(104, "Connection reset by peer"),
            ),
            "plain connection to a TLS port",
        ),
        (
            TLS,
            _caused(
                RedisConnectionError("Error 111 connecting"),
                ConnectionRefusedError(111, "Connect call failed"),
            ),
            "unreachable: connection refused at rediss://:***@127.0.0.1:6380/0",
        ),
        (TLS, TimeoutError("Timeout reading"), "the server is hung"),
    ],
)
def test_explain_names_the_cause(options: RedisOptions, exc: BaseException, expected: str) -> None:
    message = explain(exc, options)
    assert expected in message
    assert ":pw@" not in message
