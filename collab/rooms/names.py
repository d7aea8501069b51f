"""Which strings are room names (the same rule on every protocol's path)."""

from __future__ import annotations

import re
from collections.abc import Set

from ..errors import PolicyViolation

# Path segments of letters, digits and a few URL-safe marks, joined by '/'.
_ROOM_RE = re.compile(r"[\w.~:@+=,!$'()*-]+(?:/[\w.~:@+=,!$'()*-]+)*")


def validate_room_name(name: str, max_len: int, reserved: Set[str]) -> None:
    """Raise :class:`~collab.errors.PolicyViolation` (1008) unless ``name`` is a room name."""
    if not name:
        raise PolicyViolation("room name is empty")
    if len(name) > max_len:
        raise PolicyViolation(f"room name longer than {max_len} characters")
    if not _ROOM_RE.fullmatch(name) or any(s in (".", "..") for s in name.split("/")):
        raise PolicyViolation("room name has characters or segments that are not allowed")
    if name in reserved:
        raise PolicyViolation(f"{name!r} is a reserved path, not a room")
