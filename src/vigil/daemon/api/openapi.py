"""The API described in OpenAPI 3.1, served at /openapi.json (tests check that it names every
route the server has)."""

from __future__ import annotations

from typing import Any

from vigil import __version__

_ERROR = {"description": "refused; the body says why",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_OK = {"description": "done",
       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}}
# Any request can meet the server's limits (server.py, limits.py): a head or body not whole
# in time, a head over 16 KiB, too many connections from one address or in all.
_LIMITS = {"408": _ERROR, "429": _ERROR, "431": _ERROR, "503": _ERROR}


def _read(summary: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"get": {"summary": summary, **more, "responses": {**responses, **_LIMITS}}}


def _action(summary: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"post": {
        "summary": summary, "security": [{"bearer": []}],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "properties": fields}}}},
        "responses": {"200": _OK, "400": _ERROR, "401": _ERROR, "403": _ERROR,
                      "404": _ERROR, "409": _ERROR, "411": _ERROR, "413": _ERROR,
                      "415": _ERROR, "500": _ERROR, **_LIMITS}}}


_WHICH = {"which": {"type": "string", "enum": ["all", "local", "foreign"], "default": "all"}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "vigil", "version": __version__,
             "description": "Status, events, metrics and actions of one vigil node. Reads "
                            "are open (GET, or HEAD without the body); actions need the "
                            "bearer token from [api] token_file. One request per "
                            "connection. Every refusal has the Error body; 429 and 503 "
                            "come with Retry-After."},
    "paths": {
        "/": _read("The dashboard (HTML)", {"200": {"description": "the page"}}),
        "/status": _read("Nodes, links, groups and counters: the same document as "
                         "`vigil status --json`",
                         {"200": {"description": "status", "content": {"application/json": {}}},
                          "500": _ERROR}),
        "/events": _read(
            "Recent transitions; with Accept: text/event-stream, a live stream "
            "(server-sent events, id = seq; Last-Event-ID resumes)",
            {"200": {"description": "events", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "events": {"type": "array",
                               "items": {"$ref": "#/components/schemas/Event"}}}}},
                "text/event-stream": {}}},
             "400": _ERROR},
            parameters=[{"name": "since", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 0}}]),
        "/metrics": _read("Prometheus metrics (text format 0.0.4)",
                          {"200": {"description": "metrics", "content": {"text/plain": {}}},
                           "500": _ERROR}),
        "/openapi.json": _read("This description", {"200": {"description": "OpenAPI 3.1"}}),
        "/standby": _action("Hand this node's groups to the peer (hb_standby)", _WHICH),
        "/takeover": _action("Take the peer's groups (hb_takeover)", _WHICH),
        "/move": _action("Move one group to a node (default: the one not holding it)",
                         {"group": {"type": "string"}, "to": {"type": "string"}}),
        "/cleanup": _action("Forget a group's failures and bans (all groups without group)",
                            {"group": {"type": "string"}}),
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "code"], "properties": {
                "error": {"type": "string"}, "code": {"type": "string"}}},
            "Message": {"type": "object", "properties": {"message": {"type": "string"}}},
            "Event": {"type": "object", "properties": {
                "seq": {"type": "integer"}, "time": {"type": "number"},
                "node": {"type": "string"}, "kind": {"type": "string"},
                "subject": {"type": "string"}, "detail": {"type": "string"}}},
        },
    },
}
