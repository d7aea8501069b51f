"""Logging set-up: readable text by default, one JSON object per line on request.

Every record about a connection carries ``conn_id`` (and ``room`` when known)
through ``extra=``; the formatters print them, so grep by connection id finds
every line about it (the API Gateway incident: a lost connection id).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from .redact import redact_headers

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += f" [{extras}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


# websockets' own lines that uvicorn routes to its logger before any id exists.
_UNIDENTIFIED = frozenset(("connection open", "= connection is CONNECTING"))


class DropUvicornSocketLines(logging.Filter):
    """Drop uvicorn's ``<addr> - "WebSocket /path?query" [accepted]`` line and
    websockets' "connection open" / "= connection is CONNECTING" lines.

    They duplicate our "connection opened" line, which carries the connection
    id (they cannot: they are written before the socket has one), and the
    first prints the query string, where a client's token may ride.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("uvicorn") or not isinstance(record.msg, str):
            return True
        if record.msg.startswith('%s - "WebSocket %s"'):
            return False
        message = record.getMessage()
        if message in _UNIDENTIFIED:
            return False
        if record.levelno <= logging.DEBUG and message.startswith(("< ", "> ")):
            # websockets' debug trace of the handshake: the request line and
            # headers carry tokens (?token=, Sec-WebSocket-Protocol, cookies).
            record.msg, record.args = redact_headers(message), None
        return True


def configure(log_format: str, level: str) -> None:
    """Install one handler on the root logger (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(DropUvicornSocketLines())
    # Python warnings through the same handler: one format, one stream.
    logging.captureWarnings(True)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_collab", False):
            root.removeHandler(h)
    handler._collab = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
