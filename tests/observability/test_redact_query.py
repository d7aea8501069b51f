"""collab.access.redaction: credentials in query strings become '***'."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from collab.observability.redact import SENSITIVE_PARAMETERS, redact_query_string, redact_url


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


def _readme_filter_code() -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "RedactTokens" in b]
    assert len(blocks) == 1, "the README's uvicorn log filter was not found"
    return blocks[0]


def test_readme_uvicorn_filter_masks_tokens() -> None:
    """The README's filter for a host app's uvicorn, run on records shaped
    like uvicorn's own access and WebSocket lines."""
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    loggers = [logging.getLogger(n) for n in ("uvicorn.access", "uvicorn.error")]
    saved = [(lg.filters[:], lg.handlers[:], lg.propagate, lg.level) for lg in loggers]
    try:
        for lg in loggers:
            lg.handlers, lg.propagate = [Capture()], False
            lg.setLevel(logging.INFO)
        exec(compile(_readme_filter_code(), "README.md", "exec"), {})
        loggers[0].info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/collab/readyz?token=s3cret",
            "1.1",
            200,
        )
        loggers[1].info(
            '%s - "WebSocket %s" [accepted]', "127.0.0.1:5001", "/collab/team/notes?jwt=s3cret&x=1"
        )
    finally:
        for lg, (filters, handlers, propagate, level) in zip(loggers, saved, strict=True):
            lg.filters, lg.handlers, lg.propagate = filters, handlers, propagate
            lg.setLevel(level)
    assert records == [
        '127.0.0.1:5000 - "GET /collab/readyz?token=*** HTTP/1.1" 200',
        '127.0.0.1:5001 - "WebSocket /collab/team/notes?jwt=***&x=1" [accepted]',
    ]


def test_handshake_trace_lines_are_masked_both_ways() -> None:
    from collab.observability.redact import redact_headers

    trace = (
        "< GET /room?access_token=abc123&x=1 HTTP/1.1\n"
        "< Sec-WebSocket-Protocol: collab, eyJ.secret.token\n"
        "> Sec-WebSocket-Protocol: eyJ.secret.token\n"
        "< Cookie: session=s3cr3t"
    )
    out = redact_headers(trace)
    for secret in ("abc123", "eyJ.secret.token", "s3cr3t"):
        assert secret not in out
    assert "> Sec-WebSocket-Protocol: ***" in out and "x=1" in out
