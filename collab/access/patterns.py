"""Room-name patterns of a token's ``rooms`` claim.

Two wildcards, everything else literal:

- ``*`` matches any run of characters *within one segment* (no ``/``):
  ``team-*`` matches ``team-a``; ``docs/*`` matches ``docs/a`` but not
  ``docs/a/b``.
- ``**`` matches any run of characters, ``/`` included: ``docs/**`` matches
  ``docs/a`` and ``docs/a/b`` (not ``docs`` itself: the ``/`` is literal);
  ``**`` alone matches every room.

Three or more ``*`` in a row are refused (ambiguous). There is no escape:
a room pattern cannot match a literal ``*``. ``?``, ``[``, ``.``, ``\\`` and
the rest are plain characters, and no regular expression is ever built from
a pattern, so a claim cannot inject one. Matching is a small NFA walk,
linear in the room name times the pattern length, so a hostile pattern such
as ``*a*a*a*a*b`` cannot make it backtrack exponentially.

Patterns are matched against the room name as the server resolves it (the
URL path after the endpoint prefix, percent-decoded; or the Hocuspocus
document name), case-sensitively.

Usage::

    patterns = RoomPatterns.parse(["team/*", "public/**"])   # ValueError if malformed
    patterns.matches("team/notes")      # True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Bounds, so a token cannot make every handshake expensive.
MAX_PATTERNS = 256
MAX_PATTERN_LENGTH = 1024

_STAR = "*"  # one segment
_GLOBSTAR = "**"  # any segments

# An item is one literal character, _STAR or _GLOBSTAR.
_Item = str


@dataclass(frozen=True, slots=True)
class RoomPattern:
    """One compiled pattern; ``text`` is what the token said."""

    text: str
    items: tuple[_Item, ...]

    @classmethod
    def parse(cls, text: str) -> RoomPattern:
        if not text:
            raise ValueError("an empty room pattern")
        if len(text) > MAX_PATTERN_LENGTH:
            raise ValueError(f"a room pattern longer than {MAX_PATTERN_LENGTH} characters")
        items: list[_Item] = []
        i = 0
        while i < len(text):
            if text[i] != "*":
                items.append(text[i])
                i += 1
                continue
            run = len(text) - i - len(text[i:].lstrip("*"))
            if run > 2:
                raise ValueError(f"room pattern {text!r}: '***' is ambiguous")
            items.append(_GLOBSTAR if run == 2 else _STAR)
            i += run
        return cls(text, tuple(items))

    def matches(self, name: str) -> bool:
        items = self.items
        n = len(items)
        states = _closure({0}, items)
        for char in name:
            following: set[int] = set()
            for state in states:
                if state == n:
                    continue
                item = items[state]
                if item == _GLOBSTAR or (item == _STAR and char != "/"):
                    following.add(state)  # the wildcard eats this character
                elif item == char:  # a literal ('*' never is one)
                    following.add(state + 1)
            if not following:
                return False
            states = _closure(following, items)
        return n in states


def _closure(states: set[int], items: tuple[_Item, ...]) -> set[int]:
    """Add the states reached by letting wildcards match nothing."""
    out = set(states)
    for state in sorted(states):
        i = state
        while i < len(items) and items[i] in (_STAR, _GLOBSTAR):
            i += 1
            out.add(i)
    return out


@dataclass(frozen=True, slots=True)
class RoomPatterns:
    """The ``rooms`` claim: a room is allowed if any pattern matches it."""

    patterns: tuple[RoomPattern, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> RoomPatterns:
        """Compile a list of patterns; ValueError naming the bad one."""
        compiled = []
        for count, text in enumerate(texts, 1):
            if count > MAX_PATTERNS:
                raise ValueError(f"more than {MAX_PATTERNS} room patterns")
            if not isinstance(text, str):
                raise ValueError("a room pattern that is not a string")
            compiled.append(RoomPattern.parse(text))
        return cls(tuple(compiled))

    def matches(self, room: str) -> bool:
        return any(p.matches(room) for p in self.patterns)

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(p.text for p in self.patterns)
