"""Documents and who is in them: the room, its awareness table and pacer,
the registry that loads and unloads rooms, and the room-name rule. No ASGI,
no Redis, no sockets."""
