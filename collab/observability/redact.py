"""The one redaction module: what may never reach a log line, a metric label
or a readiness body (passwords, tokens, DSNs).

- :func:`redact` strips ``user:password@`` from URLs, ``password=...`` style
  pairs from DSNs and reprs, and any literal secret it is given;
- :func:`secrets_of` collects the literal secrets of the settings (passwords,
  alone or inside URLs) for :class:`Redactor`;
- :func:`redact_headers` masks the handshake headers that carry credentials
  in a websockets debug trace;
- :func:`redact_url` / :func:`redact_query_string` mask the ``token``,
  ``access_token``, ``jwt`` and ``auth`` query parameters: browsers cannot set
  headers on a WebSocket handshake, so tokens ride in the query, and every line
  that prints a URL or path (access logs, "connection opened", the Python
  client's reconnect messages) passes it through here first::

      redact_url("/room?token=eyJ...&x=1")   # "/room?token=***&x=1"
      redact_query_string(b"jwt=abc")        # "jwt=***" (ASGI scope["query_string"])
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

# user:password@ in a URL, and password=... style pairs in a DSN or a repr.
_SECRET_IN_URL = re.compile(r"(\w+://)([^:/@\s]*):([^@\s]*)@")
_SECRET_PAIR = re.compile(
    r"(?i)\b(password|passwd|pwd|token|secret|auth_token)(['\"]?\s*[=:]\s*['\"]?)([^\s'\"&,;)]+)"
)
_SECRET_HEADER = re.compile(
    r"(?im)^([<>] (?:authorization|cookie|set-cookie|sec-websocket-protocol|x-api-key): ).*$"
)

_REQUEST_LINE = re.compile(r"(?m)^(< GET )(\S+)( HTTP/)")

# Shorter literals are not scrubbed: replacing every "pw" in a message would
# garble it (URL and key=value forms still are).
_MIN_LITERAL = 4


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Strip passwords from URLs, ``password=...`` pairs, and any literal secret."""
    text = _SECRET_IN_URL.sub(r"\1\2:***@", text)
    text = _SECRET_PAIR.sub(r"\1\2***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def redact_headers(text: str) -> str:
    """A handshake trace with credential-carrying headers and the request
    line's token parameters masked."""
    text = _REQUEST_LINE.sub(lambda m: m[1] + redact_url(m[2]) + m[3], text)
    return _SECRET_HEADER.sub(r"\1***", redact(text))


def secrets_of(*values: str) -> frozenset[str]:
    """Literal secrets to scrub from errors: passwords, alone or inside URLs."""
    found: set[str] = set()
    for value in values:
        if "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                continue
            if password:
                found.update((password, unquote(password)))
        elif value:
            found.add(value)
    return frozenset(s for s in found if len(s) >= _MIN_LITERAL)


class Redactor:
    """:func:`redact` with the deployment's literal secrets, fixed when built."""

    __slots__ = ("secrets",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = frozenset(secrets)

    def __call__(self, text: str) -> str:
        return redact(text, self.secrets)


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
