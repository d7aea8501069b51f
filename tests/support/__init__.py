"""Shared test infrastructure: real servers on free loopback ports.

- ``ports``: free_port(), free_ports(n)
- ``certs``: make_certs(dir) -> CertBundle (CA, server cert for 127.0.0.1/localhost, client cert)
- ``redis_server``: RedisServer (plain / TLS, requirepass, ACL users, kill/pause/restart)
- ``postgres_server``: PostgresServer (PostgreSQL 15, works as root and as a user)
- ``servers``: run_collab() (``python -m collab serve`` subprocess), run_app() (in-process uvicorn)
- ``jsclient``: JSClient (Node y-websocket / Hocuspocus peers), run_hocuspocus_server()
- ``image``: build_image() (the Dockerfile with podman, on a cached debootstrap stand-in base)
- ``container``: Sandbox (the image run as a container would run it, without a container engine)
- ``fixtures``: pytest fixtures over the above
"""
