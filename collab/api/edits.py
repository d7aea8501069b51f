"""Text edits for bots (``POST /api/rooms/{room}/text``), made as Yjs updates.

The edit is made on a copy of the document and the room applies the
resulting update like any other, so it reaches peers, the change hook, the
backplane and the store by the one path every edit takes.

The copy writes as one client id per process (``client_id``), not a fresh
one per call: every client id stays in the document's state vector forever,
and a bot calling once a second would otherwise grow it by 86,400 entries a
day. Reusing it is safe because the copy is made and applied without an
await in between, and only this process writes as that id, starting from
the document, which holds everything that id wrote before.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Text

from ..errors import ApiError

MODES = ("append", "replace", "insert")


def check_edit(body: dict[str, Any]) -> tuple[str, str, str, int | None, dict[str, Any] | None]:
    """(field, mode, text, index, attributes) of a request body; ApiError 400."""
    field = body.get("field", "text")
    text = body.get("text")
    mode = body.get("mode", "append")
    index = body.get("index")
    attributes = body.get("attributes")
    if not isinstance(field, str) or not field:
        raise ApiError(400, "bad_request", "'field' must be a non-empty string")
    if not isinstance(text, str):
        raise ApiError(400, "bad_request", "'text' must be a string")
    if mode not in MODES:
        raise ApiError(400, "bad_request", f"'mode' must be one of {', '.join(MODES)}")
    if mode == "insert":
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ApiError(
                400,
                "bad_request",
                "'index' (a character offset >= 0) is required with mode 'insert'",
            )
    elif index is not None:
        raise ApiError(400, "bad_request", "'index' goes with mode 'insert' only")
    if attributes is not None and not isinstance(attributes, dict):
        raise ApiError(400, "bad_request", "'attributes' must be an object")
    return field, mode, text, index, attributes


def edit_text(
    current: bytes,
    client_id: int,
    field: str,
    mode: str,
    text: str,
    index: int | None,
    attributes: dict[str, Any] | None,
) -> tuple[bytes, str]:
    """The update making the edit on the document ``current``, and the new text."""
    doc: Doc[Any] = Doc(client_id=client_id)
    doc.apply_update(current)
    before = doc.get_state()
    ytext = doc.get(field, type=Text)
    old = str(ytext)
    with doc.transaction():
        if mode == "replace":
            if old:
                del ytext[0 : len(ytext)]
            position = 0
        elif mode == "append":
            position = len(ytext)
        else:
            assert index is not None
            if index > len(old):
                raise ApiError(
                    400,
                    "bad_request",
                    f"'index' {index} is past the end of {field!r} ({len(old)} characters)",
                )
            # The caller counts characters; pycrdt's offsets are UTF-8 bytes.
            position = len(old[:index].encode("utf-8"))
        if text:
            ytext.insert(position, text, attributes)
    return doc.get_update(before), str(ytext)
