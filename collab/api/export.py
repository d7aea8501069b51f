"""A Yjs document as JSON, given the type of each top-level field.

A Yjs update does not say whether a root named ``body`` is a Y.Text, a Y.Map
or a Y.Array: each client decides when it first calls ``getText("body")``.
So the caller names them: ``types=body:text,meta:map,items:array``.

=========  ================================================================
kind       JSON
=========  ================================================================
text       the text as a string (Y.Text ``toString()``)
delta      the text with its formatting, as a Quill delta (Y.Text
           ``toDelta()``): ``[{"insert": "Hi", "attributes": {"bold": true}}]``
map        an object (Y.Map ``toJSON()``), nested types included
array      a list (Y.Array ``toJSON()``)
xml        the XML string of a Y.XmlFragment (ProseMirror / Tiptap documents)
=========  ================================================================

Everything is read from a copy of the document, so a request that names a
field with the wrong type cannot bind a root type in the room's own document.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlFragment

from ..errors import ApiError

KINDS = ("text", "delta", "map", "array", "xml")
MAX_FIELDS = 64
# Numbers Yjs stores as JS doubles; integral ones print as integers, as
# JSON.stringify does in the browser.
_SAFE_INT = 2**53


def parse_types(spec: str | None) -> dict[str, str]:
    """``"a:text,b:map"`` -> ``{"a": "text", "b": "map"}``; ApiError 400 if malformed."""
    if not spec:
        raise ApiError(
            400,
            "bad_request",
            f"types is required, e.g. types=text:text; kinds: {', '.join(KINDS)}",
        )
    fields: dict[str, str] = {}
    for item in spec.split(","):
        name, sep, kind = item.strip().rpartition(":")
        if not sep or not name:
            raise ApiError(400, "bad_request", f"types item {item!r} is not field:kind")
        if kind not in KINDS:
            raise ApiError(
                400, "bad_request", f"unknown kind {kind!r} for {name!r}; kinds: {', '.join(KINDS)}"
            )
        fields[name] = kind
    if len(fields) > MAX_FIELDS:
        raise ApiError(400, "bad_request", f"at most {MAX_FIELDS} fields")
    return fields


def export(update: bytes, fields: dict[str, str]) -> dict[str, Any]:
    """The named fields of the document ``update`` holds, as JSON values."""
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return {name: _read(doc, name, kind) for name, kind in fields.items()}


def _read(doc: Doc[Any], name: str, kind: str) -> Any:
    if kind == "text":
        return str(doc.get(name, type=Text))
    if kind == "delta":
        return [_op(content, attrs) for content, attrs in doc.get(name, type=Text).diff()]
    if kind == "map":
        return _plain(doc.get(name, type=Map).to_py())
    if kind == "array":
        return _plain(doc.get(name, type=Array).to_py())
    return str(doc.get(name, type=XmlFragment))


def _op(content: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
    op: dict[str, Any] = {"insert": _plain(content)}
    if attrs:
        op["attributes"] = _plain(attrs)
    return op


def _plain(value: Any) -> Any:
    """JSON-ready: integral floats as ints, shared types as their JSON."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < _SAFE_INT else value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (Map, Array)):
        return _plain(value.to_py())
    if isinstance(value, (Text, XmlFragment)):
        return str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, bytes):
        return list(value)  # Uint8Array in JSON.stringify terms, roughly
    return str(value)
