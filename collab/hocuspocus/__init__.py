"""The Hocuspocus wire protocol (Tiptap's ``HocuspocusProvider``): many
documents over one socket, per-document authentication, stateless messages
and sync acknowledgements. See ``docs/hocuspocus.md``."""
