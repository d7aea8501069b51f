"""The Hocuspocus protocol endpoint (Tiptap's ``HocuspocusProvider``): many
documents over one socket. The wire codec is :mod:`collab.wire.hocuspocus`."""

from __future__ import annotations

from .session import HocuspocusSession

__all__ = ["HocuspocusSession"]
