"""Pure codecs, bytes in and out, no I/O: lib0, awareness, the y-websocket and
Hocuspocus protocols, and the backplane's message format."""
