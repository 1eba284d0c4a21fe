"""The HTTP API, the metrics and the dashboard, served by the daemon from its event loop.

A small HTTP/1.1 server on asyncio streams, one request per connection (`Connection:
close`): what it serves is a status document, a metrics scrape, an event stream and four
actions, so an HTTP framework would be a dependency for little. The actions are the control
socket's requests (daemon/engine.py `_handle`), so the API can do nothing the CLI cannot.

  GET  /                  the dashboard (dashboard.html)
  GET  /status            the same document as `vigil status --json`
  GET  /events            {"events": [...]}, the recent transitions (?since=SEQ for newer ones);
                          with `Accept: text/event-stream`, server-sent events, live
  GET  /metrics           Prometheus text format
  GET  /openapi.json      this API, described
  POST /standby /takeover {"which": "all"|"local"|"foreign"}
  POST /move              {"group": NAME, "to": NODE}
  POST /cleanup           {"group": NAME} (or {} for every group)

Reads are open to whoever can reach the address (bind it to 127.0.0.1 or a management
network); actions need `Authorization: Bearer TOKEN`, the token being the content of
`token_file` (mode 0600, re-read at each request, so it can be rotated without a restart).
Every refusal is a 4xx with a JSON body {"error": "...", "code": "..."}.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vigil.config.files import check_token_file, read_token as _read_token
from vigil.daemon.api.openapi import OPENAPI
from vigil.control import protocol as p
from vigil.daemon.bus import Bus, Event
from vigil.errors import VigilError
from vigil.model import Api

log = logging.getLogger("vigil")

MAX_HEAD = 16 * 1024  # request line and headers
MAX_BODY = 64 * 1024  # an action's JSON body is a few dozen bytes
MAX_CLIENTS = 64
MAX_STREAMS = 16  # event streams stay open: they get a share of their own
DRAIN_TIMEOUT = 10.0  # a client that stops reading is dropped after this
HEAD_TIMEOUT = 10.0
STREAM_KEEPALIVE = 15.0  # an SSE comment this often, so proxies and clients see it alive

ACTIONS: dict[str, dict[str, type]] = {
    "/standby": {"which": str}, "/takeover": {"which": str},
    "/move": {"group": str, "to": str}, "/cleanup": {"group": str},
}
_STATUS_OF = {p.ErrorCode.REFUSED: 409, p.ErrorCode.BAD_REQUEST: 400,
              p.ErrorCode.TOO_LARGE: 413, p.ErrorCode.FORBIDDEN: 403,
              p.ErrorCode.UNKNOWN_COMMAND: 404, p.ErrorCode.VERSION_MISMATCH: 400,
              p.ErrorCode.INTERNAL: 500}
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable"}


@dataclass
class Backend:
    """What the server needs from the daemon."""

    status: Callable[[], dict[str, Any]]
    request: Callable[[p.Request], Awaitable[p.Response]]
    metrics: Callable[[], str]
    bus: Bus


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def tls_context(api: Api) -> ssl.SSLContext | None:
    if api.cert_file is None or api.key_file is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(api.cert_file, api.key_file)
    except (OSError, ssl.SSLError) as e:
        raise VigilError(f"[api] cert_file {api.cert_file} / key_file {api.key_file}: "
                         f"{getattr(e, 'strerror', None) or e}") from None
    return ctx


class Server:
    def __init__(self, api: Api, backend: Backend) -> None:
        self.api = api
        self.backend = backend
        self.clients: set[asyncio.StreamWriter] = set()
        self.streams = 0
        self.requests = 0
        if api.token_file is not None:
            check_token_file(api.token_file)
        self.tls = tls_context(api)
        self.dashboard = resources.files(__package__).joinpath("dashboard.html").read_bytes()

    async def start(self) -> asyncio.Server:
        try:
            return await asyncio.start_server(
                self._client, self.api.host, self.api.port, ssl=self.tls, limit=MAX_HEAD,
                reuse_address=True,
                ssl_handshake_timeout=HEAD_TIMEOUT if self.tls is not None else None)
        except OSError as e:
            raise VigilError(f"[api] listen {self.api.host}:{self.api.port}: "
                             f"{e.strerror or e}") from None

    async def serve(self, server: asyncio.Server) -> None:
        """Run until cancelled; then every open connection (event streams too) is closed."""
        try:
            await asyncio.Future()
        finally:  # the connections first: from Python 3.12.1 on, closing the server
            for w in list(self.clients):  # waits for them (an open dashboard's stream)
                w.close()
            server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.clients) >= MAX_CLIENTS:
            try:
                await _send_json(writer, 503, {"error": f"more than {MAX_CLIENTS} "
                                                        f"connections", "code": "busy"})
            except (ConnectionError, ssl.SSLError, TimeoutError):
                pass
            writer.close()
            return
        self.clients.add(writer)
        try:
            await self._one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass
        except Exception:
            log.exception("HTTP request failed")
        finally:
            self.clients.discard(writer)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, target, headers = await _read_head(reader)
            self.requests += 1
            url = urlsplit(target)
            if url.path == "/events" and method == "GET" and \
                    "text/event-stream" in headers.get("accept", ""):
                if self.streams >= MAX_STREAMS:
                    raise HttpError(503, "busy", f"more than {MAX_STREAMS} event streams")
                self.streams += 1
                try:
                    await self._stream(writer, headers)
                finally:
                    self.streams -= 1
                return
            status, ctype, body, extra = await self._route(method, url.path, url.query,
                                                           headers, reader)
        except HttpError as e:
            status, ctype, extra = e.status, "application/json", e.headers
            body = _json({"error": e.message, "code": e.code})
        await _send(writer, status, ctype, body, extra)
        await _linger(reader, writer)


    async def _route(self, method: str, path: str, query: str, headers: dict[str, str],
                     reader: asyncio.StreamReader) -> tuple[int, str, bytes, dict[str, str]]:
        gets = {"/", "/status", "/events", "/metrics", "/openapi.json", "/index.html"}
        if path in gets:
            if method != "GET":
                raise HttpError(405, "method_not_allowed", f"{path} takes GET, not {method}",
                                {"Allow": "GET"})
            if path in ("/", "/index.html"):
                return 200, "text/html; charset=utf-8", self.dashboard, {}
            if path == "/status":
                return 200, "application/json", _json(self.backend.status()), {}
            if path == "/metrics":
                return (200, "text/plain; version=0.0.4; charset=utf-8",
                        self.backend.metrics().encode(), {})
            if path == "/openapi.json":
                return 200, "application/json", _json(OPENAPI), {}
            since = _since(query)
            return 200, "application/json", _json(
                {"events": [e.as_dict() for e in self.backend.bus.since(since)]}), {}
        if path not in ACTIONS:
            raise HttpError(404, "not_found", f"no such endpoint: {path[:80]}; see "
                                              f"/openapi.json")
        if method != "POST":
            raise HttpError(405, "method_not_allowed", f"{path} takes POST, not {method}",
                            {"Allow": "POST"})
        self._authorize(headers)
        args = await _read_json(reader, headers, ACTIONS[path])
        self._check_names(args)
        resp = await self.backend.request(p.Request(path[1:], args))
        if not resp.ok:
            assert resp.code is not None
            raise HttpError(_STATUS_OF.get(resp.code, 409), resp.code.value, resp.message)
        log.info("HTTP API: %s %s: %s", path[1:], json.dumps(args),
                 (resp.result or {}).get("message", "ok"))
        return 200, "application/json", _json(resp.result or {}), {}

    def _authorize(self, headers: dict[str, str]) -> None:
        if self.api.token_file is None:
            raise HttpError(403, "read_only", "this API is read-only: [api] has no token_file")
        given = headers.get("authorization", "")
        if not given:
            raise HttpError(401, "no_token", "actions need Authorization: Bearer TOKEN",
                            {"WWW-Authenticate": 'Bearer realm="vigil"'})
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HttpError(401, "no_token", "expected Authorization: Bearer TOKEN",
                            {"WWW-Authenticate": 'Bearer realm="vigil"'})
        expected = _read_token(self.api.token_file)
        if not expected or not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise HttpError(403, "bad_token", "wrong token",
                            {"WWW-Authenticate": 'Bearer realm="vigil", error="invalid_token"'})

    def _check_names(self, args: dict[str, Any]) -> None:
        s = self.backend.status()
        groups = [g["name"] for g in s["groups"]]
        nodes = [n["name"] for n in s["nodes"]]
        if "group" in args and args["group"] not in groups:
            raise HttpError(404, "unknown_group", f"no group named {args['group'][:80]!r} "
                                                  f"(groups: {', '.join(groups)})")
        if args.get("to") and args["to"] not in nodes:
            raise HttpError(404, "unknown_node", f"no node named {args['to'][:80]!r} "
                                                 f"(nodes: {', '.join(nodes)})")

    async def _stream(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        """Server-sent events: what the client missed (Last-Event-ID), then each event live."""
        bus = self.backend.bus
        q = bus.subscribe()
        try:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Cache-Control: no-store\r\nConnection: close\r\n\r\nretry: 1000\n\n")
            last = _number(headers.get("last-event-id", ""))
            for ev in bus.since(last) if last is not None else []:
                writer.write(_sse(ev))
            await _drain(writer)
            while True:
                try:
                    async with asyncio.timeout(STREAM_KEEPALIVE):
                        got = await q.get()
                except TimeoutError:
                    writer.write(b": keepalive\n\n")
                else:
                    if got is None:  # it fell too far behind
                        return
                    writer.write(_sse(got))
                await _drain(writer)
        finally:
            bus.unsubscribe(q)


def _sse(ev: Event) -> bytes:
    return f"id: {ev.seq}\nevent: {ev.kind}\ndata: {json.dumps(ev.as_dict())}\n\n".encode()


def _number(text: str) -> int | None:
    """A decimal event number, or None: ASCII digits only (str.isdigit() takes "²"), and
    short (int() refuses over 4300 digits)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


async def _drain(writer: asyncio.StreamWriter) -> None:
    async with asyncio.timeout(DRAIN_TIMEOUT):  # TimeoutError ends the connection
        await writer.drain()


def _since(query: str) -> int:
    values = parse_qs(query).get("since", ["0"])
    n = _number(values[0])
    if n is None:
        raise HttpError(400, "bad_request", f"since must be an event number, not "
                                            f"{values[0][:40]!r}")
    return n


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    try:
        async with asyncio.timeout(HEAD_TIMEOUT):
            raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "too_large", f"request head exceeds {MAX_HEAD} bytes") from None
    except TimeoutError:
        raise HttpError(400, "bad_request", f"no complete request within "
                                            f"{HEAD_TIMEOUT:g} s") from None
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise HttpError(400, "bad_request", f"malformed request line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "bad_request", f"malformed header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return parts[0], parts[1], headers


async def _read_json(reader: asyncio.StreamReader, headers: dict[str, str],
                     allowed: dict[str, type]) -> dict[str, Any]:
    if "transfer-encoding" in headers:
        raise HttpError(411, "length_required", "send the body with Content-Length, "
                                                "not Transfer-Encoding")
    length_s = headers.get("content-length", "0")
    if not (length_s.isascii() and length_s.isdigit() and len(length_s) <= 18):
        raise HttpError(400, "bad_request", f"bad Content-Length {length_s[:20]!r}")
    length = int(length_s)
    if length > MAX_BODY:
        raise HttpError(413, "too_large", f"body of {length} bytes exceeds {MAX_BODY}")
    if length == 0:
        return {}
    ctype = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HttpError(415, "unsupported_media_type",
                        f"expected Content-Type: application/json, not {ctype[:60]!r}")
    try:
        async with asyncio.timeout(HEAD_TIMEOUT):
            body = await reader.readexactly(length)
    except TimeoutError:
        raise HttpError(400, "bad_request", f"body not received within {HEAD_TIMEOUT:g} s")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HttpError(400, "bad_json", f"the body is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "bad_json", f"expected a JSON object, found "
                                         f"{type(data).__name__}")
    for k, v in data.items():
        if k not in allowed:
            raise HttpError(400, "bad_request", f"unknown field {k[:40]!r}; this action takes "
                                                f"{', '.join(allowed) or 'no fields'}")
        if not isinstance(v, allowed[k]):
            raise HttpError(400, "bad_request", f"field {k!r} must be a string")
    return data


def _json(obj: Any) -> bytes:
    return json.dumps(obj, indent=1).encode() + b"\n"


async def _send_json(writer: asyncio.StreamWriter, status: int, obj: Any) -> None:
    await _send(writer, status, "application/json", _json(obj), {})


async def _send(writer: asyncio.StreamWriter, status: int, ctype: str, body: bytes,
                extra: dict[str, str]) -> None:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}", "Cache-Control: no-store", "Connection: close",
            "X-Content-Type-Options: nosniff"]
    head += [f"{k}: {v}" for k, v in extra.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    await _drain(writer)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A refusal may come before the client's body was read. Closing with unread bytes
    makes the kernel send a reset, which can destroy the answer before the client reads it;
    so say we are done writing and read what is left (bounded) until the client closes."""
    try:
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(1.0):
            for _ in range(16):
                if not await reader.read(MAX_BODY):
                    break
    except (TimeoutError, OSError):
        pass
