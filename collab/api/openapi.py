"""The OpenAPI 3.1 document of the HTTP API, served at ``<api path>/openapi.json``.

Written by hand, next to the routes it describes; tests/api validates it with
openapi-spec-validator and checks that every route is in it.
"""

from __future__ import annotations

from typing import Any

from .export import KINDS

_JSON = "application/json"
_BINARY = "application/octet-stream"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {_JSON: {"schema": schema or {"type": "object"}}},
    }


_ROOM = {
    "name": "room",
    "in": "path",
    "required": True,
    "description": "Room name; '/' inside it may be sent as is or as %2F (a name whose "
    "last segment is an action word must use %2F)",
    "schema": {"type": "string"},
}
_CONN = {
    "name": "conn_id",
    "in": "path",
    "required": True,
    "description": "A connection id, as on log lines and in hooks",
    "schema": {"type": "string", "maxLength": 128},
}


def _close_params(default_code: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "code",
            "in": "query",
            "required": False,
            "schema": {
                "type": "integer",
                "default": default_code,
                "description": "1000 or 3000-4999",
            },
        },
        {
            "name": "reason",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "maxLength": 120},
        },
    ]


_BAD = {
    "400": _error("Invalid room name, parameter or body"),
    "401": _error("No or an invalid bearer token"),
    "403": _error("A valid JWT without the admin claim"),
}


def openapi_document(api_path: str) -> dict[str, Any]:
    room = f"{api_path}/rooms/{{room}}"
    conn = f"{api_path}/connections/{{conn_id}}"
    message_body = {
        "required": True,
        "content": {
            _JSON: {
                "schema": {
                    "type": "object",
                    "required": ["payload"],
                    "properties": {
                        "payload": {"type": "string"},
                        "room": {
                            "type": "string",
                            "description": "Only this document of the connection",
                        },
                    },
                }
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "collab HTTP API",
            "version": "1",
            "description": "Read, write, push to and close Yjs rooms and connections, "
            "across instances.",
        },
        "security": [{"bearer": []}],
        "paths": {
            f"{api_path}/rooms": {
                "get": {
                    "summary": "Rooms loaded on this instance (all=1: and those in the store)",
                    "parameters": [
                        {
                            "name": "all",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["0", "1"]},
                        }
                    ],
                    "responses": {
                        "200": _ok("Rooms", {"$ref": "#/components/schemas/Rooms"}),
                        **_BAD,
                    },
                }
            },
            room: {
                "get": {
                    "summary": "The document as one Yjs update",
                    "parameters": [
                        _ROOM,
                        {
                            "name": "state_vector",
                            "in": "query",
                            "required": False,
                            "description": "base64 state vector: only the missing diff is returned",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "A Yjs update (v1)",
                            "content": {
                                _BINARY: {"schema": {"type": "string", "contentMediaType": _BINARY}}
                            },
                        },
                        "404": _error("Empty and nobody in it"),
                        **_BAD,
                    },
                },
                "delete": {
                    "summary": "Close the room's sockets everywhere, then delete it from the store",
                    "parameters": [_ROOM, *_close_params(4404)],
                    "responses": {"200": _ok("Deleted"), **_BAD},
                },
            },
            f"{room}/json": {
                "get": {
                    "summary": "The document as JSON",
                    "parameters": [
                        _ROOM,
                        {
                            "name": "types",
                            "in": "query",
                            "required": True,
                            "description": "field:kind,... with kind one of " + ", ".join(KINDS),
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _ok("One value per field"),
                        "404": _error("Empty and nobody in it"),
                        **_BAD,
                    },
                }
            },
            f"{room}/update": {
                "post": {
                    "summary": "Apply a Yjs update (fanned out, hooked, replicated, stored)",
                    "parameters": [_ROOM],
                    "requestBody": {
                        "required": True,
                        "content": {
                            _BINARY: {"schema": {"type": "string", "contentMediaType": _BINARY}}
                        },
                    },
                    "responses": {
                        "200": _ok("Applied and stored"),
                        "413": _error("Body past COLLAB_MAX_FRAME_BYTES"),
                        "422": _error("pycrdt rejected the update"),
                        "503": _error("The store failed"),
                        **_BAD,
                    },
                }
            },
            f"{room}/text": {
                "post": {
                    "summary": "Append to, replace or insert into a text field",
                    "parameters": [_ROOM],
                    "requestBody": {
                        "required": True,
                        "content": {
                            _JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["text"],
                                    "properties": {
                                        "text": {"type": "string"},
                                        "field": {"type": "string", "default": "text"},
                                        "mode": {"enum": ["append", "replace", "insert"]},
                                        "index": {"type": "integer", "minimum": 0},
                                        "attributes": {"type": "object"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"200": _ok("Applied and stored"), **_BAD},
                }
            },
            f"{room}/message": {
                "post": {
                    "summary": "A stateless message to the room's Hocuspocus clients, everywhere",
                    "parameters": [_ROOM],
                    "requestBody": message_body,
                    "responses": {"200": _ok("Sent"), **_BAD},
                }
            },
            f"{room}/connections": {
                "delete": {
                    "summary": "Close every socket of the room, on every instance",
                    "parameters": [_ROOM, *_close_params(4205)],
                    "responses": {"200": _ok("Closed"), **_BAD},
                }
            },
            f"{conn}/message": {
                "post": {
                    "summary": "A stateless message to one connection, wherever it is",
                    "parameters": [_CONN],
                    "requestBody": message_body,
                    "responses": {
                        "200": _ok("Delivered"),
                        "404": _error("No instance holds the connection"),
                        "409": _error("A y-websocket connection (no stateless messages)"),
                        **_BAD,
                    },
                }
            },
            conn: {
                "delete": {
                    "summary": "Close one connection, wherever it is",
                    "parameters": [_CONN, *_close_params(4205)],
                    "responses": {
                        "200": _ok("Closed"),
                        "404": _error("No instance holds the connection"),
                        **_BAD,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A COLLAB_API_KEYS key, or a JWT with admin: true",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                },
                "Rooms": {
                    "type": "object",
                    "properties": {
                        "instance": {"type": "string"},
                        "rooms": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "loaded": {"type": "boolean"},
                                    "peers": {"type": "integer"},
                                    "size": {"type": "integer"},
                                    "connections": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                        },
                    },
                },
            },
        },
    }
