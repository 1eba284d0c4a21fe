"""The API described in OpenAPI 3.1, served at /openapi.json (tests check that it names every
route the server has)."""

from __future__ import annotations

from typing import Any

from vigil import __version__

_ERROR = {"description": "refused; the body says why",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_OK = {"description": "done",
       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}}


def _action(summary: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"post": {
        "summary": summary, "security": [{"bearer": []}],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "properties": fields}}}},
        "responses": {"200": _OK, "400": _ERROR, "401": _ERROR, "403": _ERROR,
                      "404": _ERROR, "409": _ERROR, "411": _ERROR, "413": _ERROR,
                      "415": _ERROR}}}


_WHICH = {"which": {"type": "string", "enum": ["all", "local", "foreign"], "default": "all"}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "vigil", "version": __version__,
             "description": "Status, events, metrics and actions of one vigil node. Reads "
                            "are open; actions need the bearer token from [api] token_file."},
    "paths": {
        "/": {"get": {"summary": "The dashboard (HTML)",
                      "responses": {"200": {"description": "the page"}}}},
        "/status": {"get": {"summary": "Nodes, links, groups and counters: the same "
                                       "document as `vigil status --json`",
                            "responses": {"200": {"description": "status",
                                                  "content": {"application/json": {}}}}}},
        "/events": {"get": {
            "summary": "Recent transitions; with Accept: text/event-stream, a live stream "
                       "(server-sent events, id = seq; Last-Event-ID resumes)",
            "parameters": [{"name": "since", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": {"description": "events", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "events": {"type": "array",
                               "items": {"$ref": "#/components/schemas/Event"}}}}},
                "text/event-stream": {}}},
                "400": _ERROR}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (text format 0.0.4)",
                             "responses": {"200": {"description": "metrics",
                                                   "content": {"text/plain": {}}}}}},
        "/openapi.json": {"get": {"summary": "This description",
                                  "responses": {"200": {"description": "OpenAPI 3.1"}}}},
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
