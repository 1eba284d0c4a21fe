"""The control-socket protocol, sans-IO: shared by the daemon and the CLI.

One request per connection: a single line of JSON (at most MAX_MESSAGE bytes) such as
`{"v": 1, "cmd": "status"}`, answered by one line `{"ok": true, "result": {...}}` or
`{"ok": false, "error": {"code": "...", "message": "..."}}`. The version is checked first so
that a CLI and a daemon of different releases say so instead of misreading each other.
Decoding never raises: bad input becomes a `ProtocolError` value.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

VERSION = 1
MAX_MESSAGE = 1 << 20  # a status of hundreds of groups fits; a runaway client does not


class ErrorCode(str, enum.Enum):
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    VERSION_MISMATCH = "version_mismatch"
    UNKNOWN_COMMAND = "unknown_command"
    REFUSED = "refused"  # understood, but the cluster's state does not allow it
    FORBIDDEN = "forbidden"
    INTERNAL = "internal"


# command -> the arguments it takes (name -> type); every one optional
COMMANDS: dict[str, dict[str, type]] = {
    "status": {}, "standby": {"which": str}, "takeover": {"which": str},
    "cleanup": {"group": str}, "move": {"group": str, "to": str},
    "fence_confirm": {"node": str}, "reload": {}, "force_promotion": {"group": str},
    "lb_status": {}, "lb_drain": {"service": str, "server": str}, "lb_enable": {"service": str, "server": str},
}


@dataclass(frozen=True, slots=True)
class Request:
    cmd: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Response:
    ok: bool
    result: dict[str, Any] | None = None
    code: ErrorCode | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class ProtocolError:
    code: ErrorCode
    message: str


def encode_request(req: Request) -> bytes:
    return _line({"v": VERSION, "cmd": req.cmd, "args": req.args})


def decode_request(data: bytes) -> Request | ProtocolError:
    doc = _load(data)
    if isinstance(doc, ProtocolError):
        return doc
    if doc.get("v") != VERSION:
        return ProtocolError(ErrorCode.VERSION_MISMATCH,
                             f"protocol version {doc.get('v')!r}; this daemon speaks {VERSION}")
    cmd = doc.get("cmd")
    args = doc.get("args", {})
    if not isinstance(cmd, str) or not isinstance(args, dict) or set(doc) - {"v", "cmd", "args"}:
        return ProtocolError(ErrorCode.BAD_REQUEST, "expected {v, cmd, args}")
    if cmd not in COMMANDS:
        return ProtocolError(ErrorCode.UNKNOWN_COMMAND,
                             f"unknown command {cmd[:40]!r}; known: {', '.join(sorted(COMMANDS))}")
    allowed = COMMANDS[cmd]
    for name, value in args.items():
        if name not in allowed:
            return ProtocolError(ErrorCode.BAD_REQUEST, f"{cmd} takes no argument {name[:40]!r}")
        if not isinstance(value, allowed[name]):
            return ProtocolError(ErrorCode.BAD_REQUEST,
                                 f"{cmd}: {name} must be a {allowed[name].__name__}")
    return Request(cmd, args)


def encode_response(resp: Response) -> bytes:
    if resp.ok:
        return _line({"ok": True, "result": resp.result or {}})
    assert resp.code is not None
    return _line({"ok": False, "error": {"code": resp.code.value, "message": resp.message}})


def decode_response(data: bytes) -> Response | ProtocolError:
    doc = _load(data)
    if isinstance(doc, ProtocolError):
        return doc
    if doc.get("ok") is True and isinstance(doc.get("result"), dict):
        return Response(True, doc["result"])
    err = doc.get("error")
    if doc.get("ok") is False and isinstance(err, dict):
        try:
            code = ErrorCode(err.get("code"))
        except ValueError:
            code = ErrorCode.INTERNAL
        return Response(False, None, code, str(err.get("message", "")))
    return ProtocolError(ErrorCode.BAD_REQUEST, "malformed response")


def _line(doc: dict[str, Any]) -> bytes:
    data = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    return data


def _load(data: bytes) -> dict[str, Any] | ProtocolError:
    if len(data) > MAX_MESSAGE:
        return ProtocolError(ErrorCode.TOO_LARGE, f"message exceeds {MAX_MESSAGE} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ProtocolError(ErrorCode.BAD_REQUEST, "not valid JSON")
    if not isinstance(doc, dict):
        return ProtocolError(ErrorCode.BAD_REQUEST, "expected a JSON object")
    return doc
