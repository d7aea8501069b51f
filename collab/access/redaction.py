"""Redact credentials from the query string of a URL or a request path.

Browsers cannot set headers on a WebSocket handshake, so tokens ride in the
query (``wss://host/room?token=...``), and every line that prints a URL can
leak one: access logs, our "connection opened" line, the Python client's
reconnect messages. Every place collab logs a URL or path passes it through
:func:`redact_url` first; the value of a sensitive parameter becomes ``***``.

This module will be folded into the single redaction module
(``collab/observability/``) alongside the password/DSN redaction of
``collab.health``; until then it lives here, next to the tokens it protects.

::

    redact_url("/room?token=eyJ...&x=1")         # "/room?token=***&x=1"
    redact_query_string(b"jwt=abc")              # "jwt=***"  (ASGI scope["query_string"])
"""

from __future__ import annotations

from urllib.parse import unquote

# Parameter names compared case-insensitively, after percent-decoding the
# name (so "%74oken=" and "TOKEN=" are caught too).
SENSITIVE_PARAMETERS = frozenset({"token", "access_token", "jwt", "auth"})
MASK = "***"


def redact_query_string(query: str | bytes) -> str:
    """``a=1&token=x`` -> ``a=1&token=***``; everything else kept as it was."""
    if isinstance(query, bytes):
        query = query.decode("latin-1")  # ASGI: raw bytes; latin-1 never fails
    parts = []
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and _is_sensitive(name):
            pair = f"{name}={MASK}"
        parts.append(pair)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """Redact the query (and a fragment, which a client might log) of a URL or path."""
    base, hash_sign, fragment = url.partition("#")
    path, question, query = base.partition("?")
    out = path
    if question:
        out += "?" + redact_query_string(query)
    if hash_sign:
        out += "#" + redact_query_string(fragment)
    return out


def _is_sensitive(name: str) -> bool:
    return unquote(name.replace("+", " ")).strip().lower() in SENSITIVE_PARAMETERS
