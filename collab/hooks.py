"""Lifecycle hooks: few, typed, and each given the connection id.

Pass a :class:`Hooks` to :func:`collab.create_app`, or name one in settings
(``COLLAB_HOOKS=package.module:hooks``). Every hook is an ``async`` callable;
one that raises is logged with the connection id and, for ``authenticate``,
denies the connection with 1011 rather than letting it in.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .connection import CloseRecord
from .errors import CloseCode, ConfigError


@dataclass(frozen=True, slots=True)
class AuthRequest:
    connection_id: str
    room: str
    token: str
    headers: Mapping[str, str]
    query: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class AuthResult:
    allowed: bool
    readonly: bool = False
    code: int = CloseCode.FORBIDDEN
    reason: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def allow(cls, *, readonly: bool = False, **context: Any) -> AuthResult:
        return cls(True, readonly=readonly, context=context)

    @classmethod
    def deny(cls, reason: str, code: int = CloseCode.FORBIDDEN) -> AuthResult:
        """Deny with 4403 (forbidden) or 4401 (unauthorized: no/invalid credentials)."""
        if code not in (CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN):
            raise ValueError("deny with 4401 or 4403")
        return cls(False, code=code, reason=reason)


@dataclass(frozen=True, slots=True)
class ConnectEvent:
    connection_id: str
    room: str
    readonly: bool
    context: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    connection_id: str
    room: str
    update: bytes


@dataclass(frozen=True, slots=True)
class RoomEvent:
    room: str
    size: int  # bytes loaded or stored


def _unsupported(payload: str) -> None:
    raise RuntimeError("this StatelessEvent was not made by a session: it cannot reply")


@dataclass(frozen=True, slots=True)
class StatelessEvent:
    """A Hocuspocus stateless message from one client, for ``on_stateless``.

    ``reply(payload)`` answers the sender (that document on that socket);
    ``broadcast(payload)`` reaches every Hocuspocus client of the room, the
    sender included, on every instance (as ``CollabServer.send_stateless``).
    """

    connection_id: str
    room: str
    payload: str
    reply: Callable[[str], None] = field(default=_unsupported, repr=False, compare=False)
    broadcast: Callable[[str], None] = field(default=_unsupported, repr=False, compare=False)


Authenticate = Callable[[AuthRequest], Awaitable[AuthResult]]


@dataclass(frozen=True)
class Hooks:
    authenticate: Authenticate | None = None
    on_connect: Callable[[ConnectEvent], Awaitable[None]] | None = None
    on_disconnect: Callable[[CloseRecord], Awaitable[None]] | None = None
    on_change: Callable[[ChangeEvent], Awaitable[None]] | None = None
    on_load: Callable[[RoomEvent], Awaitable[None]] | None = None
    on_store: Callable[[RoomEvent], Awaitable[None]] | None = None
    on_stateless: Callable[[StatelessEvent], Awaitable[None]] | None = None


def load_hooks(spec: str) -> Hooks:
    """Import ``package.module:attribute``; the attribute is a Hooks or returns one."""
    if not spec:
        return Hooks()
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"COLLAB_HOOKS={spec!r}: expected 'package.module:attribute'")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"COLLAB_HOOKS={spec!r}: {exc}") from exc
    hooks = target() if callable(target) and not isinstance(target, Hooks) else target
    if not isinstance(hooks, Hooks):
        raise ConfigError(f"COLLAB_HOOKS={spec!r} is not a collab.Hooks")
    return hooks
