"""What each request gets: the paths, the token, the actions' JSON. No sockets here: a
request head comes in (exchange.Request), and out comes a whole answer, an event stream to
open, or an action whose body the server must read first; then `act` does the action.

  GET  /                  the dashboard (dashboard.html); also /index.html
  GET  /status            the same document as `vigil status --json`
  GET  /events            {"events": [...]}, the recent transitions (?since=SEQ for newer ones);
                          with `Accept: text/event-stream`, server-sent events, live
  GET  /metrics           Prometheus text format
  GET  /openapi.json      this API, described
  POST /standby /takeover {"which": "all"|"local"|"foreign"}
  POST /move              {"group": NAME, "to": NODE}
  POST /cleanup           {"group": NAME} (or {} for every group)

HEAD is answered wherever GET is (without the body). The actions are the control socket's
requests (daemon/services/control.py `handle`), so the API can do nothing the CLI cannot; they need
`Authorization: Bearer TOKEN`, the token being the content of `token_file` (mode 0600,
re-read at each request, so it can be rotated without a restart).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union
from urllib.parse import parse_qs

from vigil.control import protocol as p
from vigil.daemon.api.exchange import HttpError, Reply, Request, json_bytes
from vigil.daemon.api.openapi import OPENAPI
from vigil.config.files import read_token as _read_token
from vigil.daemon.bus import Bus
from vigil.model import Api

log = logging.getLogger(__name__)

ACTIONS: dict[str, dict[str, type]] = {
    "/standby": {"which": str}, "/takeover": {"which": str},
    "/move": {"group": str, "to": str}, "/cleanup": {"group": str},
}
READS = ("/", "/index.html", "/status", "/events", "/metrics", "/openapi.json")
_STATUS_OF = {p.ErrorCode.REFUSED: 409, p.ErrorCode.BAD_REQUEST: 400,
              p.ErrorCode.TOO_LARGE: 413, p.ErrorCode.FORBIDDEN: 403,
              p.ErrorCode.UNKNOWN_COMMAND: 404, p.ErrorCode.VERSION_MISMATCH: 400,
              p.ErrorCode.INTERNAL: 500}
_BEARER = 'Bearer realm="vigil"'


@dataclass
class Backend:
    """What the server needs from the daemon."""

    status: Callable[[], dict[str, Any]]
    request: Callable[[p.Request], Awaitable[p.Response]]
    metrics: Callable[[], str]
    bus: Bus


@dataclass(frozen=True, slots=True)
class Stream:
    """Open an event stream, replaying what came after `last_event_id` first."""

    last_event_id: int | None


@dataclass(frozen=True, slots=True)
class Action:
    """An authorised action: read its body (at most `length` bytes), then `Router.act`."""

    path: str
    length: int


Routed = Union[Reply, Stream, Action]


class Router:
    def __init__(self, api: Api, backend: Backend, dashboard: bytes, max_body: int) -> None:
        self.api = api
        self.backend = backend
        self.dashboard = dashboard
        self.max_body = max_body

    def route(self, req: Request) -> Routed:
        """Raises HttpError for every refusal."""
        if not req.target.startswith("/"):
            raise HttpError(400, "bad_request", f"expected a path, not {req.target[:80]!r}")
        path = req.path
        if path in READS:
            if req.method not in ("GET", "HEAD"):
                raise HttpError(405, "method_not_allowed", f"{path} takes GET, not "
                                f"{req.method[:20]}", (("Allow", "GET, HEAD"),))
            return self._read(req)
        if path not in ACTIONS:
            raise HttpError(404, "not_found", f"no such endpoint: {path[:80]}; see "
                                              f"/openapi.json")
        if req.method != "POST":
            raise HttpError(405, "method_not_allowed", f"{path} takes POST, not "
                            f"{req.method[:20]}", (("Allow", "POST"),))
        self._authorize(req.headers)
        return Action(path, self._body_length(req))

    async def act(self, action: Action, body: bytes, ctype: str) -> Reply:
        args = _arguments(body, ctype, ACTIONS[action.path])
        self._check_names(args)
        resp = await self.backend.request(p.Request(action.path[1:], args))
        if not resp.ok:
            assert resp.code is not None
            raise HttpError(_STATUS_OF.get(resp.code, 409), resp.code.value, resp.message)
        # only a token holder gets here: one line per action, as the control socket does
        log.info("HTTP API: %s %s: %s", action.path[1:], json.dumps(args),
                 (resp.result or {}).get("message", "ok"))
        return Reply(200, json_bytes(resp.result or {}))

    def _read(self, req: Request) -> Routed:
        path = req.path
        if path in ("/", "/index.html"):
            return Reply(200, self.dashboard, "text/html; charset=utf-8")
        if path == "/status":
            return Reply(200, json_bytes(self.backend.status()))
        if path == "/metrics":
            return Reply(200, self.backend.metrics().encode(),
                         "text/plain; version=0.0.4; charset=utf-8")
        if path == "/openapi.json":
            return Reply(200, json_bytes(OPENAPI))
        assert path == "/events", path
        if req.method == "GET" and "text/event-stream" in req.header("accept"):
            return Stream(_number(req.header("last-event-id")))
        since = _since(req.query)
        return Reply(200, json_bytes(
            {"events": [e.as_dict() for e in self.backend.bus.since(since)]}))

    def _authorize(self, headers: Mapping[str, str]) -> None:
        if self.api.token_file is None:
            raise HttpError(403, "read_only", "this API is read-only: [api] has no token_file")
        given = headers.get("authorization", "")
        if not given:
            raise HttpError(401, "no_token", "actions need Authorization: Bearer TOKEN",
                            (("WWW-Authenticate", _BEARER),))
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HttpError(401, "no_token", "expected Authorization: Bearer TOKEN",
                            (("WWW-Authenticate", _BEARER),))
        expected = _read_token(self.api.token_file)
        if not expected or not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise HttpError(403, "bad_token", "wrong token", (
                ("WWW-Authenticate", f'{_BEARER}, error="invalid_token"'),))

    def _body_length(self, req: Request) -> int:
        # h11 has checked the framing (one valid Content-Length, or chunked); what is left
        # is what this API accepts of it.
        if req.header("transfer-encoding"):
            raise HttpError(411, "length_required", "send the body with Content-Length, "
                                                    "not Transfer-Encoding")
        length = int(req.header("content-length") or "0")
        if length > self.max_body:
            raise HttpError(413, "too_large", f"body of {length} bytes exceeds "
                                              f"{self.max_body}")
        return length

    def _check_names(self, args: dict[str, str]) -> None:
        s = self.backend.status()
        groups = [g["name"] for g in s["groups"]]
        nodes = [n["name"] for n in s["nodes"]]
        if "group" in args and args["group"] not in groups:
            raise HttpError(404, "unknown_group", f"no group named {args['group'][:80]!r} "
                                                  f"(groups: {', '.join(groups)})")
        if args.get("to") and args["to"] not in nodes:
            raise HttpError(404, "unknown_node", f"no node named {args['to'][:80]!r} "
                                                 f"(nodes: {', '.join(nodes)})")


def _arguments(body: bytes, ctype: str, allowed: dict[str, type]) -> dict[str, str]:
    """An action's arguments: a JSON object of string fields, each one `allowed`."""
    if not body:
        return {}
    media = ctype.split(";")[0].strip().lower() or "application/json"
    if media != "application/json":
        raise HttpError(415, "unsupported_media_type",
                        f"expected Content-Type: application/json, not {media[:60]!r}")
    try:
        data = json.loads(body)
    except RecursionError:  # json's decoder recurses on nesting: 30,000 "[" are enough
        raise HttpError(400, "bad_json", "the body is not JSON this API takes: nested "
                                         "too deeply") from None
    except ValueError as e:  # malformed, not UTF-8, or an integer int() refuses (4300 digits)
        raise HttpError(400, "bad_json", f"the body is not JSON: {str(e)[:120]}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "bad_json", f"expected a JSON object, found "
                                         f"{type(data).__name__}")
    for k, v in data.items():
        if k not in allowed:
            raise HttpError(400, "bad_request", f"unknown field {k[:40]!r}; this action takes "
                                                f"{', '.join(allowed) or 'no fields'}")
        if not isinstance(v, allowed[k]):
            raise HttpError(400, "bad_request", f"field {k[:40]!r} must be a string")
    return data


def _number(text: str) -> int | None:
    """A decimal event number, or None: ASCII digits only (str.isdigit() takes "²"), and
    short (int() refuses over 4300 digits)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _since(query: str) -> int:
    values = parse_qs(query).get("since", ["0"])
    n = _number(values[0])
    if n is None:
        raise HttpError(400, "bad_request", f"since must be an event number, not "
                                            f"{values[0][:40]!r}")
    return n
