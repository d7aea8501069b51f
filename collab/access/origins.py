"""The ``Origin`` allow-list (``COLLAB_ALLOWED_ORIGINS``), as a pure object.

A browser sends ``Origin`` on every WebSocket handshake and a page cannot
forge it; a non-browser client (a bot, a server, our Python client) usually
sends none. Checking it stops cross-site WebSocket hijacking (CSWSH): without
it, any page a developer visits can open ``ws://127.0.0.1:1234/room`` and, if
an authenticate hook trusts cookies, act as that developer. An allow-list
rather than "Origin must equal Host": the strict check broke reverse-proxied
Jupyter deployments, where the proxy rewrites Host.

Usage (the integration calls this before accepting the upgrade)::

    policy = OriginPolicy.parse(settings.allowed_origins)   # ConfigError if malformed
    if not policy.checking:
        log.warning("COLLAB_ALLOWED_ORIGINS is unset: any web page may connect")
    ...
    if not policy.allows(origin_header_or_None, settings.require_origin):
        refuse the handshake with HTTP 403

Entries, comma-separated:

- ``*``: any Origin value (``null`` included: any page can send its own
  origin anyway). Only ``require_origin`` still matters.
- ``https://app.example.com``, ``http://localhost:5173``: one exact origin.
  Scheme and host are compared in lower case, a default port (80 for http and
  ws, 443 for https and wss) is the same as none, trailing ``/`` is ignored,
  and a Unicode host is turned into its ``xn--`` form, which is what browsers
  send.
- ``https://*.example.com``: any subdomain of example.com, at any depth
  (``a.example.com``, ``a.b.example.com``), but not ``example.com`` itself
  (list it too if wanted). The ``*.`` must be the whole leftmost label, and
  at least two labels must follow it (``*.com`` is refused).

Refused as entries, with a :class:`ConfigError` naming the variable: a path,
query or fragment, user info (``user@``), ``null`` (sandboxed iframes and
``file://`` pages all send it, so allowing it allows them all), a ``*``
anywhere else, an invalid port or host.

Matching a request's Origin is strict: it must be exactly
``scheme://host[:port]`` (what browsers send); anything else — ``null``, user
info, a path, a percent-escape, non-ASCII — matches no entry except ``*``.
Host comparison is on whole labels, so ``https://example.com.evil`` and
``https://evil.example.com.attacker.net`` match neither
``https://example.com`` nor ``https://*.example.com``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..errors import ConfigError

VARIABLE = "COLLAB_ALLOWED_ORIGINS"

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# scheme://host[:port] and nothing else; the host is a bracketed IPv6 literal
# or a run of characters that are not delimiters (validated further below).
_ORIGIN = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>\[[^\]/]*\]|[^:/?#@\[\]\s\\%]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
# A DNS label; "_" too, as browsers accept it in host names (e.g. compose services).
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")

# (scheme, host, port): a serialised origin, normalised.
Origin = tuple[str, str, int | None]


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """What ``COLLAB_ALLOWED_ORIGINS`` allows; build it with :meth:`parse`."""

    checking: bool = False
    any_origin: bool = False
    exact: frozenset[Origin] = frozenset()
    # (scheme, ".example.com", port): the host must end with the suffix.
    wildcards: tuple[Origin, ...] = ()

    @classmethod
    def parse(cls, raw: str) -> OriginPolicy:
        """Parse the setting; empty (or only spaces) means no check at all."""
        if not raw.strip():
            return cls()
        exact: set[Origin] = set()
        wildcards: list[Origin] = []
        any_origin = False
        for item in raw.split(","):
            entry = item.strip().rstrip("/")
            if not entry:
                continue  # "a, b," : a trailing comma is harmless
            if entry == "*":
                any_origin = True
                continue
            scheme, host, port = _parse_entry(entry)
            if host.startswith("*."):
                wildcards.append((scheme, host[1:], port))
            else:
                exact.add((scheme, host, port))
        if not (any_origin or exact or wildcards):
            raise ConfigError(f"{VARIABLE}={raw!r} lists no origin")
        return cls(True, any_origin, frozenset(exact), tuple(wildcards))

    def allows(self, origin: str | None, require_origin: bool) -> bool:
        """May a handshake with this ``Origin`` header (None: absent) go on?

        Without the setting there is no check (``require_origin`` is then
        refused by the settings, see :mod:`collab.config`).
        """
        if not self.checking:
            return True
        if origin is None:
            return not require_origin
        if self.any_origin:
            return True
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        if parsed in self.exact:
            return True
        scheme, host, port = parsed
        return any(
            scheme == w_scheme and port == w_port and host.endswith(suffix)
            for w_scheme, suffix, w_port in self.wildcards
        )

    def describe(self) -> str:
        """One line for the start-up log (origins are not secret)."""
        if not self.checking:
            return "no Origin check"
        if self.any_origin:
            return "any Origin"
        names = sorted(_format(o) for o in self.exact)
        names += sorted(_format((s, "*" + h, p)) for s, h, p in self.wildcards)
        return ", ".join(names)


def parse_origin(value: str) -> Origin | None:
    """A request's Origin header, normalised, or None if it is not one."""
    if not value.isascii():
        return None  # browsers send xn-- hosts; raw Unicode is not an origin
    match = _ORIGIN.fullmatch(value.strip())
    if match is None:
        return None
    scheme = match["scheme"].lower()
    host = _normalise_host(match["host"].lower())
    port = _port(scheme, match["port"])
    if host is None or port == -1:
        return None
    return scheme, host, port


def _parse_entry(entry: str) -> Origin:
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{VARIABLE}: {entry!r} {why}")

    if entry.lower() == "null":
        raise bad("is refused: every sandboxed iframe and file:// page sends 'null'")
    scheme_part, sep, rest = entry.partition("://")
    if not sep:
        raise bad("is not an origin (expected scheme://host[:port])")
    if "@" in rest:
        raise bad("has user info; an origin is scheme://host[:port]")
    if any(c in rest for c in "/?#"):
        raise bad("has a path, query or fragment; an origin is scheme://host[:port]")
    wildcard = rest.startswith("*.")
    if wildcard:
        rest = rest[2:]
    if "*" in rest or "*" in scheme_part:
        raise bad("has a '*' that is not a leading '*.' label")
    try:
        ascii_rest = _to_ascii(rest)
    except UnicodeError as exc:
        raise bad("has a host that is not a valid international domain name") from exc
    match = _ORIGIN.fullmatch(f"{scheme_part}://{ascii_rest}")
    if match is None:
        raise bad("is not an origin (expected scheme://host[:port])")
    scheme = match["scheme"].lower()
    host = _normalise_host(match["host"].lower())
    if host is None:
        raise bad("has an invalid host")
    port = _port(scheme, match["port"])
    if port == -1:
        raise bad("has an invalid port")
    if wildcard:
        if host.startswith("[") or _is_ipv4(host) or host.count(".") < 1:
            raise bad("is too broad: '*.' needs a domain of at least two labels after it")
        host = "*." + host
    return scheme, host, port


def _to_ascii(rest: str) -> str:
    """IDNA-encode a Unicode host (browsers send the xn-- form); UnicodeError if invalid."""
    if rest.isascii():
        return rest
    host, colon, port = rest.partition(":")
    labels = [label.encode("idna").decode("ascii") for label in host.split(".")]
    return ".".join(labels) + colon + port


def _normalise_host(host: str) -> str | None:
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            return None
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return None  # empty label ("a..b", trailing dot), bad character
    return host


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _port(scheme: str, raw: str | None) -> int | None:
    """None for the scheme's default port (or none given), -1 if invalid."""
    if raw is None:
        return None
    port = int(raw)
    if not 0 < port <= 65535:
        return -1
    return None if DEFAULT_PORTS.get(scheme) == port else port


def _format(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")
