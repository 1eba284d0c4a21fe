"""One HTTP/1.1 exchange (a request and its answer) on one connection, with h11 doing all
of the parsing and framing: request line, headers, Content-Length and chunked bodies, the
rules for Host, and the encoding of what goes back (chunked for an event stream). This
module only moves bytes between an asyncio stream and h11's state machine.

Timeouts belong to the caller (server.py wraps each step in its deadline); sizes are checked
here, because h11 sees the bytes: a request head over `max_head` is refused (431) wherever it
ends, and a body longer than announced cannot arrive (h11 frames it).
"""

from __future__ import annotations

import asyncio
import http
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import h11

READ_SIZE = 64 * 1024


class HttpError(Exception):
    """A refusal: answered `status` with {"error": message, "code": code}."""

    def __init__(self, status: int, code: str, message: str,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def reply(self) -> Reply:
        return Reply(self.status, json_bytes({"error": self.message, "code": self.code}),
                     headers=self.headers)


@dataclass(frozen=True, slots=True)
class Request:
    """A request head, as h11 read it."""

    method: str
    target: str  # as sent: path and query
    headers: Mapping[str, str]  # names in lower case; a repeated one joined with ", "
    path: str = field(init=False)
    query: str = field(init=False)

    def __post_init__(self) -> None:
        path, _, query = self.target.partition("?")
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "query", query)

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer (Content-Length); an event stream is sent with `Exchange.stream`."""

    status: int
    body: bytes
    ctype: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=1).encode() + b"\n"


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class Exchange:
    """Read one request, send one answer, then wind the connection down (`linger`)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 max_head: int) -> None:
        self.reader, self.writer = reader, writer
        self.max_head = max_head
        # h11 refuses (431) a head still incomplete past this; `request` checks whole ones
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
        self.received = 0  # bytes read from the client
        self.method = b""
        self.answered = False  # the head of an answer has gone out

    async def request(self) -> Request | None:
        """The next request's head, or None if the client closed before sending a byte.
        Raises HttpError for what h11 refuses (400, or its status hint: 431, 501...)."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                status = e.error_status_hint
                raise HttpError(status, _CODES.get(status, "bad_request"),
                                f"malformed request: {e}") from None
            if isinstance(event, h11.Request):
                break
            if isinstance(event, h11.ConnectionClosed):
                return None
            assert event is h11.NEED_DATA, event
            await self._receive()
        head = self.received - len(self.h11.trailing_data[0])
        if head > self.max_head:
            raise HttpError(431, "too_large", f"request head of {head} bytes exceeds "
                                              f"{self.max_head}")
        self.method = event.method
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key, text = name.decode("ascii"), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        return Request(event.method.decode("ascii"), event.target.decode("ascii"), headers)

    async def body(self) -> bytes:
        """The request's body, whole (the caller has checked its announced length)."""
        if self.h11.they_are_waiting_for_100_continue:
            self._write(self.h11.send(h11.InformationalResponse(status_code=100,
                                                                headers=[])))
        data = bytearray()
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                raise HttpError(400, "bad_request", f"malformed body: {e}") from None
            if isinstance(event, h11.Data):
                data += event.data
            elif isinstance(event, h11.EndOfMessage):
                return bytes(data)
            else:
                assert event is h11.NEED_DATA, event
                await self._receive()

    async def reply(self, reply: Reply) -> None:
        headers = [("Content-Type", reply.ctype), ("Content-Length", str(len(reply.body))),
                   *_COMMON, *reply.headers]
        self._write(self.h11.send(h11.Response(status_code=reply.status, headers=headers,
                                               reason=_reason(reply.status))))
        self.answered = True
        if reply.body and self.method != b"HEAD":  # h11 frames HEAD's answer without one
            self._write(self.h11.send(h11.Data(data=reply.body)))
        self._write(self.h11.send(h11.EndOfMessage()))
        await self.writer.drain()

    async def stream(self, ctype: str, first: bytes) -> None:
        """The head of an answer of unknown length (chunked to an HTTP/1.1 client, up to the
        close to an HTTP/1.0 one), and its first bytes."""
        headers = [("Content-Type", ctype), *_COMMON]
        self._write(self.h11.send(h11.Response(status_code=200, headers=headers,
                                               reason=b"OK")))
        self.answered = True
        await self.send(first)

    async def send(self, data: bytes) -> None:
        self._write(self.h11.send(h11.Data(data=data)))
        await self.writer.drain()

    async def end(self) -> None:
        self._write(self.h11.send(h11.EndOfMessage()))
        await self.writer.drain()

    async def linger(self, max_bytes: int) -> None:
        """After the answer: say so (FIN), then read and drop what the client still sends,
        up to its own close or `max_bytes`. Closing a socket with unread bytes makes the
        kernel send a reset, which can destroy the answer before the client has read it
        (a refusal sent before the request was read, a body not wanted). The caller bounds
        the time."""
        if self.writer.can_write_eof():  # not over TLS: there the close says it
            self.writer.write_eof()
        drained = 0
        while drained < max_bytes:
            chunk = await self.reader.read(READ_SIZE)
            if not chunk:
                return
            drained += len(chunk)

    async def _receive(self) -> None:
        data = await self.reader.read(READ_SIZE)
        self.received += len(data)
        self.h11.receive_data(data)  # b"": the client closed its side

    def _write(self, data: bytes | None) -> None:
        assert data is not None
        self.writer.write(data)


_CODES = {431: "too_large", 501: "not_implemented"}
_COMMON = [("Cache-Control", "no-store"), ("Connection", "close"),
           ("X-Content-Type-Options", "nosniff")]
