"""The HTTP API: read, write, push to and close rooms and connections (README "HTTP API")."""

from .auth import ApiAuth
from .routes import Api

__all__ = ["Api", "ApiAuth"]
