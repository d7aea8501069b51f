"""collab.access.patterns: '*' within a segment, '**' across, the rest literal."""

from __future__ import annotations

import time

import pytest

from collab.access import RoomPattern, RoomPatterns
from collab.access.patterns import MAX_PATTERN_LENGTH, MAX_PATTERNS


@pytest.mark.parametrize(
    ("pattern", "room", "expected"),
    [
        ("notes", "notes", True),
        ("notes", "notes2", False),
        ("notes", "Notes", False),  # case-sensitive
        ("team-*", "team-a", True),
        ("team-*", "team-", True),
        ("team-*", "team-a/b", False),
        ("docs/*", "docs/a", True),
        ("docs/*", "docs/a/b", False),
        ("docs/*", "docs", False),
        ("docs/**", "docs/a", True),
        ("docs/**", "docs/a/b/c", True),
        ("docs/**", "docs", False),
        ("docs/**", "docsx/a", False),
        ("**", "anything/at/all", True),
        ("**", "", True),
        ("*", "a", True),
        ("*", "a/b", False),
        ("*/notes", "team/notes", True),
        ("*/notes", "a/b/notes", False),
        ("**/notes", "a/b/notes", True),
        ("a/**/z", "a/b/c/z", True),
        ("a/**/z", "a/z", False),
        ("org/*/doc-*", "org/acme/doc-1", True),
        ("org/*/doc-*", "org/acme/x/doc-1", False),
        # Regular-expression syntax is literal.
        ("a.b", "a.b", True),
        ("a.b", "axb", False),
        ("a+", "aa", False),
        ("a+", "a+", True),
        ("[ab]", "a", False),
        ("[ab]", "[ab]", True),
        ("x?", "x", False),
        ("x?", "x?", True),
        ("(.*)", "anything", False),
        ("^a$", "^a$", True),
        ("a\\*", "a\\b", True),  # a backslash escapes nothing
        ("a\\*", "a*", False),
    ],
)
def test_matching(pattern: str, room: str, expected: bool) -> None:
    assert RoomPattern.parse(pattern).matches(room) is expected


@pytest.mark.parametrize("pattern", ["", "***", "a/***/b", "x" * (MAX_PATTERN_LENGTH + 1)])
def test_malformed_patterns(pattern: str) -> None:
    with pytest.raises(ValueError):
        RoomPattern.parse(pattern)


def test_any_pattern_of_the_list() -> None:
    patterns = RoomPatterns.parse(["team/*", "public/**"])
    assert patterns.matches("team/a") and patterns.matches("public/x/y")
    assert not patterns.matches("private/a")
    assert not RoomPatterns().matches("a")
    assert patterns.texts == ("team/*", "public/**")


def test_list_bounds_and_types() -> None:
    with pytest.raises(ValueError, match="more than"):
        RoomPatterns.parse(["a"] * (MAX_PATTERNS + 1))
    with pytest.raises(ValueError, match="not a string"):
        RoomPatterns.parse([1])  # type: ignore[list-item]


def test_hostile_pattern_is_linear() -> None:
    # A backtracking matcher takes exponential time on this; ours walks an NFA.
    pattern = RoomPattern.parse("*a" * 40 + "*b")
    started = time.perf_counter()
    assert not pattern.matches("a" * 256)
    assert time.perf_counter() - started < 1.0
