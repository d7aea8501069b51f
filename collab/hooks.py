"""Lifecycle hooks: few, typed, and each given the connection id.

Pass a :class:`Hooks` to :func:`collab.create_app`, or name one in settings
(``COLLAB_HOOKS=package.module:hooks``). Every hook is an ``async`` callable;
one that raises is logged with the connection id and, for ``authenticate``,
denies the connection with 1011 rather than letting it in.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .access.tokens import RoomForbidden, TokenRejected, TokenVerifier
from .config import check_hooks_spec
from .errors import CloseCode, ConfigError
from .rooms.room import Origin, PeerOrigin
from .tasks import TaskSet
from .transport.connection import CloseRecord

if TYPE_CHECKING:
    from .rooms.room import Room

log = logging.getLogger("collab.hooks")


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
    check_hooks_spec(spec)
    module_name, _, attr = spec.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"COLLAB_HOOKS={spec!r}: {exc}") from exc
    hooks = target() if callable(target) and not isinstance(target, Hooks) else target
    if not isinstance(hooks, Hooks):
        raise ConfigError(f"COLLAB_HOOKS={spec!r} is not a collab.Hooks")
    return hooks


class HookRunner:
    """Runs the application's hooks: a hook that raises is logged with the
    connection id and never takes the caller down. Fire-and-forget calls
    (``on_change``, which must not delay the edit) are owned tasks.

    Authentication is the built-in JWT check (``verifier``, when
    ``COLLAB_JWT_*`` is set) and then the ``authenticate`` hook, if any: both
    must allow, and either may make the connection read-only.

    It is also a room observer: every update a local peer made becomes an
    ``on_change`` call.
    """

    def __init__(self, hooks: Hooks, verifier: TokenVerifier | None = None) -> None:
        self.hooks = hooks
        self.verifier = verifier
        self._tasks = TaskSet("hooks")

    @property
    def checks_access(self) -> bool:
        """False when anyone may read and write every room."""
        return self.verifier is not None or self.hooks.authenticate is not None

    async def authenticate(self, request: AuthRequest, *,
                           extra: Mapping[str, str] | None = None) -> AuthResult:
        readonly, context = False, {}
        if self.verifier is not None:
            try:
                grant = self.verifier.authorize(request.token, request.room)
            except (TokenRejected, RoomForbidden) as exc:
                return AuthResult(False, code=exc.code, reason=exc.reason)
            readonly = grant.readonly
            if grant.subject:
                context["subject"] = grant.subject
        hook = self.hooks.authenticate
        if hook is None:
            return AuthResult.allow(readonly=readonly, **context)
        try:
            result = await hook(request)
        except Exception:
            log.exception("authenticate hook failed", extra=dict(extra or {}))
            return AuthResult(False, code=CloseCode.INTERNAL, reason="authentication failed")
        if result.allowed and (readonly or context):
            result = dataclasses.replace(result, readonly=result.readonly or readonly,
                                         context={**context, **result.context})
        return result

    async def run(self, hook: Callable[[Any], Awaitable[None]] | None, event: Any) -> None:
        """Await ``hook(event)`` (if set); its failure is logged, not raised."""
        if hook is None:
            return
        try:
            await hook(event)
        except Exception:
            log.exception("hook %s failed", getattr(hook, "__name__", hook),
                          extra={"conn_id": getattr(event, "connection_id", "-")})

    def room_update(self, room: Room, update: bytes, origin: Origin) -> None:
        if self.hooks.on_change is not None and isinstance(origin, PeerOrigin):
            event = ChangeEvent(origin.peer_id, room.name, update)
            self._tasks.spawn(self.run(self.hooks.on_change, event), name="on_change")

    def room_awareness(self, room: Room, update: bytes, origin: Origin) -> None:
        pass

    def room_stateless(self, room: Room, payload: str, origin: Origin) -> None:
        pass

    async def aclose(self) -> None:
        """Wait for nothing more: cancel the hook calls still running."""
        await self._tasks.aclose()
