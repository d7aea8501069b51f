"""Lifecycle hooks: few, typed, and each given the connection id.

Pass a :class:`Hooks` to :func:`collab.create_app`, or name one in settings
(``COLLAB_HOOKS=package.module:hooks``). Every hook is an ``async`` callable;
one that raises is logged with the connection id and, for ``authenticate``,
denies the connection with 1011 rather than letting it in. A hook that has
not answered after ``COLLAB_HOOK_TIMEOUT`` has failed the same way (a hung
webhook must not hold a socket, a room's writes or shutdown).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
from collections import deque
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

# on_change calls waiting to run; past this the hook is slower than the edits
# and the oldest waiting calls are dropped (counted), never a task per edit.
CHANGE_BACKLOG = 1024


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


class HookFailed(Exception):
    """A hook raised or timed out (:meth:`HookRunner.call` re-raises as this)."""

    def __init__(self, name: str, timed_out: bool) -> None:
        super().__init__(f"hook {name} {'timed out' if timed_out else 'failed'}")
        self.timed_out = timed_out


class HookRunner:
    """Runs the application's hooks: a hook that raises or does not answer
    within ``timeout`` is logged with its name and the connection id and
    never takes the caller down. ``on_failure(hook, cause)`` counts it.

    Authentication is the built-in JWT check (``verifier``, when
    ``COLLAB_JWT_*`` is set) and then the ``authenticate`` hook, if any: both
    must allow, and either may make the connection read-only.

    It is also a room observer: every update a local peer made becomes an
    ``on_change`` call, queued (at most ``CHANGE_BACKLOG``) and run one at a
    time by a single task, so the edit never waits for application code and
    a hook that raises or hangs costs no task per update.
    """

    def __init__(
        self,
        hooks: Hooks,
        *,
        verifier: TokenVerifier | None = None,
        timeout: float = 10.0,
        on_failure: Callable[[str, str], None] | None = None,
        on_dropped: Callable[[], None] | None = None,
    ) -> None:
        self.hooks = hooks
        self.verifier = verifier
        self.timeout = timeout
        self._on_failure = on_failure
        self._on_dropped = on_dropped
        self._tasks = TaskSet("hooks")
        self._changes: deque[ChangeEvent] = deque()
        self._change_task: asyncio.Task[None] | None = None

    @property
    def checks_access(self) -> bool:
        """False when anyone may read and write every room."""
        return self.verifier is not None or self.hooks.authenticate is not None

    async def authenticate(self, request: AuthRequest) -> AuthResult:
        """The JWT check, then the hook. A hook that fails is a denial: 4401
        when it hangs ("not authenticated yet", which providers retry), 1011
        when it raises; both are logged by :meth:`call`, naming the hook."""
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
            result: AuthResult = await self.call(hook, request)
        except HookFailed as exc:
            if exc.timed_out:
                return AuthResult(
                    False, code=CloseCode.UNAUTHORIZED, reason="authentication timed out"
                )
            return AuthResult(False, code=CloseCode.INTERNAL, reason="authentication failed")
        if result.allowed and (readonly or context):
            result = dataclasses.replace(
                result, readonly=result.readonly or readonly, context={**context, **result.context}
            )
        return result

    async def call(self, hook: Callable[[Any], Awaitable[Any]], event: Any) -> Any:
        """``await hook(event)`` within the timeout; its failure is logged and
        raised as :class:`HookFailed`."""
        name = self._name_of(hook)
        extra = {"conn_id": getattr(event, "connection_id", "-")}
        try:
            async with asyncio.timeout(self.timeout):
                return await hook(event)
        except TimeoutError:
            log.error(
                "%s hook did not answer within %gs (COLLAB_HOOK_TIMEOUT)",
                name,
                self.timeout,
                extra=extra,
            )
            self._failed(name, "timeout")
            raise HookFailed(name, True) from None
        except Exception as exc:
            log.exception("%s hook failed", name, extra=extra)
            self._failed(name, "raised")
            raise HookFailed(name, False) from exc

    def _name_of(self, hook: object) -> str:
        """The Hooks field (a fixed set: the metric label), and the function."""
        for f in dataclasses.fields(self.hooks):
            if getattr(self.hooks, f.name) is hook:
                return f.name
        return str(getattr(hook, "__name__", "hook"))[:64]

    def _failed(self, name: str, cause: str) -> None:
        if self._on_failure is not None:
            self._on_failure(name, cause)

    async def run(self, hook: Callable[[Any], Awaitable[None]] | None, event: Any) -> bool:
        """Await ``hook(event)`` (if set); False when it failed (logged, not raised)."""
        if hook is None:
            return True
        try:
            await self.call(hook, event)
        except HookFailed:
            return False
        return True

    def room_update(self, room: Room, update: bytes, origin: Origin) -> None:
        if self.hooks.on_change is None or not isinstance(origin, PeerOrigin):
            return
        if len(self._changes) >= CHANGE_BACKLOG:
            self._changes.popleft()
            if self._on_dropped is not None:
                self._on_dropped()
        self._changes.append(ChangeEvent(origin.peer_id, room.name, update))
        if self._change_task is None:
            self._change_task = self._tasks.spawn(self._run_changes(), name="on_change")

    async def _run_changes(self) -> None:
        try:
            while self._changes:
                await self.run(self.hooks.on_change, self._changes.popleft())
        finally:
            self._change_task = None

    @property
    def pending_changes(self) -> int:
        return len(self._changes)

    @property
    def running(self) -> int:
        """Hook tasks alive (at most one: the on_change runner)."""
        return len(self._tasks)

    def room_awareness(self, room: Room, update: bytes, origin: Origin) -> None:
        pass

    def room_stateless(self, room: Room, payload: str, origin: Origin) -> None:
        pass

    async def aclose(self) -> None:
        """Wait for nothing more: cancel the hook calls still running."""
        self._changes.clear()
        await self._tasks.aclose()
