"""collab.access.redaction: credentials in query strings become '***'."""

from __future__ import annotations

import pytest

from collab.access import SENSITIVE_PARAMETERS, redact_query_string, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/room?token=eyJ.abc.def", "/room?token=***"),
        ("/room?a=1&token=s3cret&b=2", "/room?a=1&token=***&b=2"),
        ("wss://h/r?access_token=s3cret", "wss://h/r?access_token=***"),
        ("/r?jwt=s3cret&auth=s3cret", "/r?jwt=***&auth=***"),
        ("/r?TOKEN=s3cret", "/r?TOKEN=***"),
        ("/r?%74oken=s3cret", "/r?%74oken=***"),
        ("/r?token=a&token=b", "/r?token=***&token=***"),
        ("/r?x=1#token=s3cret", "/r?x=1#token=***"),
        ("/r?token=", "/r?token="),  # nothing to hide
        ("/r?tokens=keep&mytoken=keep", "/r?tokens=keep&mytoken=keep"),
        ("/r", "/r"),
        ("/r?", "/r?"),
        ("/r?token", "/r?token"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert "s3cret" not in redact_url(url)


def test_asgi_query_string_bytes() -> None:
    assert redact_query_string(b"room=a&jwt=s3cret") == "room=a&jwt=***"


def test_the_four_names() -> None:
    assert frozenset({"token", "access_token", "jwt", "auth"}) == SENSITIVE_PARAMETERS
