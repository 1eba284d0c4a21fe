"""One HTTP exchange (vigil.daemon.api.exchange) and the routes behind it, with no sockets:
the bytes go through an in-memory asyncio.StreamReader, whole, byte by byte and as
garbage; what comes back is parsed by the standard library's http.client. As h11's own
fuzzing asserts of h11, only HttpError may escape on anything a client sends."""

from __future__ import annotations

import asyncio
import http.client
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.control import protocol as p
from vigil.daemon.api.exchange import Exchange, HttpError, Reply, Request
from vigil.daemon.api.routes import Action, Backend, Router, Stream, _arguments
from vigil.daemon.bus import Bus
from vigil.model import Api

MAX_HEAD = 16 * 1024


class Sink:
    """The writing half: what the server sent, and whether it said it was done."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False

    def write(self, data: bytes) -> None:
        assert not self.eof
        self.data += data

    async def drain(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True


def exchange(chunks: list[bytes], eof: bool = True) -> tuple[Exchange, Sink,
                                                               asyncio.StreamReader]:
    reader = asyncio.StreamReader()
    for c in chunks:
        reader.feed_data(c)
    if eof:
        reader.feed_eof()
    sink = Sink()
    return Exchange(reader, sink, MAX_HEAD), sink, reader  # type: ignore[arg-type]


def read_request(chunks: list[bytes], eof: bool = True) -> Request | None:
    async def go() -> Request | None:
        ex, _, _ = exchange(chunks, eof)
        return await ex.request()
    return asyncio.run(go())


GET = b"GET /events?since=3 HTTP/1.1\r\nHost: vigil\r\nAccept: text/event-stream\r\n" \
      b"X-Twice: a\r\nx-twice: b\r\n\r\n"


def test_a_request_whole_byte_by_byte_and_with_more_behind_it() -> None:
    want = read_request([GET])
    assert want is not None
    assert (want.method, want.path, want.query) == ("GET", "/events", "since=3")
    assert want.header("accept") == "text/event-stream"
    assert want.header("x-twice") == "a, b"
    assert read_request([bytes([b]) for b in GET]) == want
    assert read_request([GET + b"POST /standby HTTP/1.1\r\n"], eof=False) == want


def test_an_incomplete_head_waits_for_more() -> None:
    async def go() -> None:
        ex, _, reader = exchange([GET[:-1]], eof=False)
        task = asyncio.ensure_future(ex.request())
        await asyncio.sleep(0)
        assert not task.done()
        reader.feed_data(GET[-1:])
        assert (await task) is not None
    asyncio.run(go())


@pytest.mark.parametrize("raw,status", [
    (b"GET /status HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 needs Host
    (b"GET /status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"POST /move HTTP/1.1\r\nHost: v\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    (b"POST /move HTTP/1.1\r\nHost: v\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /move HTTP/1.1\r\nHost: v\r\nContent-Length: " + b"1" * 30 + b"\r\n\r\n", 400),
    (b"POST /move HTTP/1.1\r\nHost: v\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET /status HTTP/1.1\r\nHost : v\r\n\r\n", 400),  # a space before the colon
    (b"GET /status HTTP/1.1\r\nHost: v\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET /sta tus HTTP/1.1\r\nHost: v\r\n\r\n", 400),
    (b"GET /status HTTP/1.1\r\nHost: v\r\n", 400),  # then the client closed
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # TLS to the plain port
    (b"GET /status HTTP/1.1\r\nHost: v\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n", 431),
    (b"GET /status HTTP/1.1\r\nHost: v\r\nX-Big: " + b"a" * (4 * MAX_HEAD), 431),
])
def test_what_h11_refuses_is_an_http_error_with_its_status(raw: bytes, status: int) -> None:
    with pytest.raises(HttpError) as e:
        read_request([raw])
    assert e.value.status == status


def test_a_head_of_exactly_max_head_is_taken_one_byte_more_is_not() -> None:
    base = b"GET /status HTTP/1.1\r\nHost: v\r\nX-Pad: \r\n\r\n"
    fits = base.replace(b"X-Pad: ", b"X-Pad: " + b"a" * (MAX_HEAD - len(base)))
    assert len(fits) == MAX_HEAD and read_request([fits]) is not None
    with pytest.raises(HttpError) as e:
        read_request([fits.replace(b"X-Pad: ", b"X-Pad: a")])
    assert e.value.status == 431


def test_a_client_that_closes_without_a_byte_gets_nothing() -> None:
    assert read_request([]) is None


def answer(raw_request: bytes, reply: Reply) -> tuple[http.client.HTTPResponse, Sink]:
    async def go() -> Sink:
        ex, sink, _ = exchange([raw_request])
        await ex.request()
        await ex.reply(reply)
        await ex.linger(1 << 20)
        return sink
    sink = asyncio.run(go())
    r = http.client.HTTPResponse(_Sock(bytes(sink.data)),  # type: ignore[arg-type]
                                 method=raw_request.split(b" ")[0].decode())
    r.begin()
    return r, sink


class _Sock:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.data)


def test_an_answer_is_framed_for_the_client_and_ends_with_a_fin() -> None:
    r, sink = answer(b"GET /status HTTP/1.1\r\nHost: v\r\n\r\n",
                     Reply(429, b'{"error": "x", "code": "y"}\n',
                           headers=(("Retry-After", "1"),)))
    assert (r.status, r.reason) == (429, "Too Many Requests")
    assert r.getheader("Connection") == "close" and r.getheader("Retry-After") == "1"
    assert r.getheader("Content-Type") == "application/json"
    assert r.read() == b'{"error": "x", "code": "y"}\n'
    assert sink.eof


def test_a_head_request_gets_the_length_but_no_body() -> None:
    r, sink = answer(b"HEAD / HTTP/1.1\r\nHost: v\r\n\r\n", Reply(200, b"<html>", "text/html"))
    assert r.status == 200 and r.getheader("Content-Length") == "6"
    assert sink.data.endswith(b"\r\n\r\n")


def test_a_refusal_can_go_out_before_any_request_was_read() -> None:
    async def go() -> bytes:
        ex, sink, _ = exchange([b"GET /status HTTP/1.1\r\nHost: v\r\n\r\n"], eof=True)
        await ex.reply(HttpError(503, "busy", "full").reply())
        await ex.linger(1 << 20)  # reads the request, so the close is no reset
        return bytes(sink.data)
    assert asyncio.run(go()).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")


def test_expect_100_continue_gets_its_interim_answer_then_the_body_is_read() -> None:
    async def go() -> tuple[bytes, bytes]:
        ex, sink, _ = exchange([b"POST /move HTTP/1.1\r\nHost: v\r\nContent-Length: 2\r\n"
                                b"Expect: 100-continue\r\n\r\n{}"])
        await ex.request()
        return await ex.body(), bytes(sink.data)
    body, sent = asyncio.run(go())
    assert body == b"{}" and sent.startswith(b"HTTP/1.1 100 ")


class Daemon:
    def status(self) -> dict[str, Any]:
        return {"nodes": [{"name": "n1"}], "groups": [{"name": "web"}]}

    async def request(self, req: p.Request) -> p.Response:
        return p.Response(True, {"message": "ok"})

    def metrics(self) -> str:
        return ""


def router(tmp: Path) -> Router:
    token = tmp / "token"
    token.write_text("secret\n")
    d = Daemon()
    return Router(Api("127.0.0.1", 0, token),
                  Backend(d.status, d.request, d.metrics, Bus("n1")), b"<html>", 64 * 1024)


prefixes = st.sampled_from([b"", b"GET / HTTP/1.1\r\nHost: v\r\n",
                            b"POST /move HTTP/1.1\r\nHost: v\r\nAuthorization: Bearer secret\r\n",
                            b"GET /events?since=", b"GET /events HTTP/1.0\r\nLast-Event-ID: "])
garbage = st.one_of(st.binary(max_size=300),
                    st.lists(st.sampled_from([b"\r\n", b":", b" ", b"Content-Length: 3",
                                              b"Transfer-Encoding: chunked", b"\x00", b"\xff",
                                              b"HTTP/1.1", b"?since=9", b"%", b"[", b"{"]),
                             max_size=30).map(b"".join))


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefixes, garbage, st.booleans())
def test_garbage_only_ever_raises_http_error(tmp_path: Path, prefix: bytes, junk: bytes,
                                             finish: bool) -> None:
    """Whatever a client sends, reading it and routing it either works or is an HttpError
    (a 4xx or 5xx for the client); nothing else escapes."""
    r = router(tmp_path)
    raw = prefix + junk + (b"\r\n\r\n" if finish else b"")

    async def go() -> None:
        ex, _, _ = exchange([raw])
        try:
            req = await ex.request()
            if req is None:
                return
            routed = r.route(req)
            if isinstance(routed, Action):
                body = await ex.body()
                await r.act(routed, body, req.header("content-type"))
            else:
                assert isinstance(routed, (Reply, Stream))
        except HttpError as e:
            assert 400 <= e.status < 600 and e.code and e.message
    asyncio.run(go())


json_junk = st.one_of(
    st.binary(max_size=200),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                     st.sampled_from(["group", "to", "which", "x"]), inner, max_size=3),
                 max_leaves=10).map(lambda v: repr(v).replace("'", '"').encode()),
    st.integers(1, 40_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 40_000).map(lambda n: b'{"group": ' + b"{\"a\": " * n + b"1" + b"}" * n
                               + b"}"),
    st.integers(4000, 6000).map(lambda n: b'{"which": ' + b"9" * n + b"}"))


@settings(max_examples=300, deadline=None)
@given(json_junk)
def test_an_action_body_is_a_dict_of_strings_or_an_http_error(body: bytes) -> None:
    try:
        args = _arguments(body, "application/json", {"group": str, "to": str})
    except HttpError as e:
        assert e.status in (400, 415) and e.code in ("bad_json", "bad_request")
    else:
        assert set(args) <= {"group", "to"} and all(isinstance(v, str) for v in args.values())
