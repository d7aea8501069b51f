"""Sockets: the connection (outbound queue, close accounting), the session
base every protocol builds on, the ASGI endpoint, and our uvicorn protocol."""
