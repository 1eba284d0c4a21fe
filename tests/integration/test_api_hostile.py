"""The HTTP API under a hostile client (issue 12): the real server, in-process on loopback,
with the production limits, in front of a fake daemon (tests/integration/apiclient.py).

Each attack is bounded in connections and seconds, and sends only to 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vigil.daemon.api.limits import Limits
from vigil.daemon.api.server import LOG_BURST
from vigil.ratelimit import RateLimiter

from tests.integration.apiclient import (TOKEN, LiveServer, Outcome, fetch, fetch_blocking,
                                         get, live_server, parse, request, slow_client)


def kinds(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(o.kind if o.kind != "answer" else str(o.status) for o in outcomes)


def test_a_slowloris_from_one_address_leaves_status_to_the_others(tmp_path: Path) -> None:
    """100 connections from 127.0.0.2 sending a header byte a second (and reconnecting when
    dropped): /status, / and /metrics from another address are answered throughout, and
    whatever the attacker is told is a well-formed answer, never a reset."""
    seconds = 6.0

    async def attack(port: int) -> tuple[list[Outcome], list[Outcome]]:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        slow = [asyncio.create_task(slow_client(port, "127.0.0.2", until)) for _ in range(100)]
        await asyncio.sleep(1.0)  # the attack is in place
        polls: list[Outcome] = []
        while loop.time() < until - 0.5:
            for path in ("/status", "/", "/metrics"):
                polls.append(await get(port, path, timeout=2.0))
            await asyncio.sleep(0.2)
        told = [o for outcomes in await asyncio.gather(*slow) for o in outcomes]
        return polls, told

    with live_server(tmp_path) as s:
        polls, told = asyncio.run(attack(s.port))
        stats = s.server.statistics()
    print(f"\nslowloris x100: others' requests {dict(kinds(polls))}, "
          f"attacker told {dict(kinds(told))}, {stats}")
    assert len(polls) >= 15
    assert kinds(polls) == {"200": len(polls)}, kinds(polls)
    assert max(o.seconds for o in polls) < 1.0
    assert all(o.well_formed for o in told), kinds(told)
    assert {o.status for o in told} <= {408, 429, 503}, kinds(told)


def test_500_concurrent_requests_all_get_a_well_formed_answer(tmp_path: Path) -> None:
    """A burst of 500 GET /status at once (500 threads, 5 addresses): each gets an HTTP
    answer, a 200 or a refusal with the documented JSON and Retry-After, except those
    closed unanswered because max_refusing (128) refusals were being answered at once,
    which the server counts as dropped (limits.py). The client threads share the GIL with
    the server's loop and read their refusals late: a clean CI run saw 41 such drops."""
    with live_server(tmp_path) as s:
        with ThreadPoolExecutor(500) as pool:
            got = list(pool.map(lambda i: fetch_blocking(s.port, request("GET", "/status"),
                                                         src=f"127.0.0.{10 + i % 5}"),
                                range(500)))
        stats = s.server.statistics()
    print(f"\n500 concurrent: {dict(kinds(got))}, {stats}")
    resets = [o for o in got if o.kind == "reset"]
    assert len(resets) == stats.admission.dropped, (kinds(got), stats)  # each one counted
    assert all(o.well_formed for o in got if o.kind != "reset"), kinds(got)
    refused = [o for o in got if o.kind != "reset" and o.status != 200]
    assert all(o.status in (429, 503) and "retry-after" in o.headers for o in refused)
    assert sum(o.status == 200 for o in got) >= 100, kinds(got)


NESTED = b"[" * 30_000 + b"]" * 30_000


@pytest.mark.parametrize("raw,status,code", [
    # json.loads recurses: RecursionError
    (request("POST", "/move", NESTED, Authorization=f"Bearer {TOKEN}",
             Content_Type="application/json"), 400, "bad_json"),
    (request("POST", "/move", b'{"group": ' + NESTED[:20_000] + NESTED[-20_000:] + b"}",
             Authorization=f"Bearer {TOKEN}", Content_Type="application/json"), 400, "bad_json"),
    # int() refuses over 4300 digits: a ValueError that is not a JSONDecodeError
    (request("POST", "/standby", b'{"which": ' + b"7" * 5000 + b"}",
             Authorization=f"Bearer {TOKEN}", Content_Type="application/json"), 400, "bad_json"),
    # urlsplit() raises on an unclosed IPv6 bracket
    (request("GET", "//[/status"), 404, "not_found"),
])
def test_hostile_input_gets_a_4xx_and_no_traceback(tmp_path: Path, raw: bytes, status: int,
                                                   code: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with live_server(tmp_path) as s:
        got = asyncio.run(fetch(s.port, raw))
        assert s.daemon.actions == []
    assert got.kind == "answer" and got.well_formed, got
    assert (got.status, got.json()["code"]) == (status, code), got.json()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_what_a_client_can_make_the_daemon_log_is_rate_limited(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A bug any client can reach (here: the status document raises) answers 500 with the
    JSON body every time, but is logged only a few times; a count of the rest follows."""
    n = 200

    async def hammer(port: int) -> list[Outcome]:
        out = []
        for _ in range(n):
            out.append(await get(port, "/status"))
        return out

    caplog.set_level(logging.INFO)
    with live_server(tmp_path) as s:
        # the production limiter's rate (one line per 10 s after a burst), a summary a
        # second after the burst rather than 10 s
        s.server.log_limit = RateLimiter(1.0, LOG_BURST)
        s.daemon.broken = True
        got = asyncio.run(hammer(s.port))
        end = time.monotonic() + 5
        while not any("suppressed" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < end, "no count of the suppressed messages"
            time.sleep(0.1)
    assert kinds(got) == {"500": n}, kinds(got)
    assert all(o.well_formed and o.json()["code"] == "internal" for o in got)
    failures = [r for r in caplog.records if "status" in r.getMessage() and r.exc_info]
    assert 1 <= len(failures) <= 10, len(failures)
    notes = [r.getMessage() for r in caplog.records if "suppressed" in r.getMessage()]
    suppressed = sum(int(k) for m in notes for k in re.findall(r"suppressed=(\d+)", m))
    assert len(failures) + suppressed == n, (len(failures), notes)


# --- with limits made small, so that each rule shows in a second or two ---------------------


def test_a_trickled_head_or_body_gets_408_at_its_deadline_however_often_bytes_come(
        tmp_path: Path) -> None:
    """A byte every 0.2 s would satisfy a timeout per read for ever: the deadline is for the
    whole head (and, after it, the whole body)."""
    lim = Limits(head_timeout=1.0, body_timeout=1.0)
    body_prefix = request("POST", "/standby", Authorization=f"Bearer {TOKEN}",
                          Content_Type="application/json", Content_Length="100") + b'{"which"'

    async def both(port: int) -> list[Outcome]:
        until = asyncio.get_running_loop().time() + 5.0
        return [o for got in await asyncio.gather(
            slow_client(port, "127.0.0.1", until, 0.2, reconnect=False),
            slow_client(port, "127.0.0.1", until, 0.2, reconnect=False, prefix=body_prefix))
                for o in got]

    with live_server(tmp_path, limits=lim) as s:
        head, body = asyncio.run(both(s.port))
        assert s.daemon.actions == []
        assert s.server.statistics().timeouts == 2
    for o, what in ((head, "request head"), (body, "body")):
        assert o.well_formed and (o.status, o.json()["code"]) == (408, "timeout"), o
        assert what in o.json()["error"]
        assert 0.9 < o.seconds < 1.8, o.seconds


def test_a_slowloris_from_many_addresses_does_not_keep_whole_requests_out(
        tmp_path: Path) -> None:
    """60 slow connections from 15 addresses, 4 each, reconnecting: more than the 24 slots,
    and the per-address limit lets them all in. The slots stay full of slow heads, but a
    request sent whole is served from the overflow; the attackers beyond the slots are
    told 503 or 429 after overflow_timeout, well-formed."""
    lim = Limits(max_clients=24, per_address=4, max_streams=4, head_timeout=30.0,
                 overflow_timeout=0.5)
    seconds = 5.0

    async def attack(port: int, s: LiveServer) -> tuple[list[Outcome], list[Outcome]]:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        slow = [asyncio.create_task(slow_client(port, f"127.0.1.{1 + i % 15}", until, 0.5))
                for i in range(60)]
        await asyncio.sleep(1.0)
        # Until slow heads hold every slot: of the burst of 60 connects, a listen queue of
        # max_clients may drop some SYNs, which come back 1 s later (a loaded CI saw polls
        # take slots still free: admitted 30). Bounded: 3 s more at most.
        for _ in range(30):
            if s.server.statistics().admission.clients >= lim.max_clients:
                break
            await asyncio.sleep(0.1)
        polls = []
        while loop.time() < until - 0.5:
            polls.append(await get(port, "/status", timeout=2.0))
            await asyncio.sleep(0.1)
        return polls, [o for got in await asyncio.gather(*slow) for o in got]

    with live_server(tmp_path, limits=lim) as s:
        polls, told = asyncio.run(attack(s.port, s))
        stats = s.server.statistics()
    print(f"\nslowloris 60 from 15 addresses: others {dict(kinds(polls))}, attackers told "
          f"{dict(kinds(told))}, {stats.admission}")
    assert len(polls) >= 15 and kinds(polls) == {"200": len(polls)}, kinds(polls)
    # Served from the overflow, not after a slot frees (the slow heads hold theirs for the
    # 30 s head_timeout). Under this storm of reconnections the listen queue (max_clients
    # long, by design: server.py) may drop a handshake packet, which TCP sends again after
    # 1 s: that once, and no more (CI saw 1.016 s).
    took = sorted(o.seconds for o in polls)
    assert took[len(took) // 2] < 0.5 and took[-1] < 1.5, took
    # the first 24 slow heads took the slots and kept them: everything else, the requests
    # answered included, went through the overflow
    assert stats.admission.admitted == lim.max_clients
    assert stats.admission.overflowed > len(polls)
    assert told and all(o.well_formed and o.status in (429, 503) for o in told), kinds(told)
    # refused at overflow_timeout, not head_timeout (a connect can take 1 s more: a SYN
    # retransmitted when the listen queue overflowed)
    assert all(0.4 < o.seconds < 3.0 for o in told), sorted(o.seconds for o in told)[-3:]


async def open_stream(port: int, src: str) -> tuple[asyncio.StreamReader,
                                                     asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    writer.write(request("GET", "/events", Accept="text/event-stream", Last_Event_ID="0"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
    return reader, writer, head


def test_event_streams_are_limited_per_address_and_end_when_the_server_stops(
        tmp_path: Path) -> None:
    lim = Limits(streams_per_address=2, max_streams=3)

    async def go(s: LiveServer) -> None:
        mine = [await open_stream(s.port, "127.0.0.5") for _ in range(2)]
        assert all(h.startswith(b"HTTP/1.1 200 ") and b"chunked" in h for _, _, h in mine)
        third = await get(s.port, "/events", src="127.0.0.5")  # not a stream: answered
        assert third.status == 200 and third.json() == {"events": []}
        refused = await fetch(s.port, request("GET", "/events", Accept="text/event-stream"),
                              src="127.0.0.5")
        assert refused.well_formed and (refused.status, refused.json()["code"]) == (
            429, "too_many_streams")
        other = await open_stream(s.port, "127.0.0.6")
        full = await fetch(s.port, request("GET", "/events", Accept="text/event-stream"),
                           src="127.0.0.7")
        assert full.well_formed and (full.status, full.json()["code"]) == (503, "busy")
        assert "retry-after" in full.headers
        s.stop()  # the daemon shuts down: every stream ends, promptly
        t0 = asyncio.get_running_loop().time()
        for reader, writer, _ in [*mine, other]:
            async with asyncio.timeout(2.0):
                while await reader.read(65536):
                    pass
            writer.close()
        assert asyncio.get_running_loop().time() - t0 < 2.0

    with live_server(tmp_path, limits=lim) as s:
        asyncio.run(go(s))
        assert s.server.statistics().admission.streams == 0


@pytest.mark.parametrize("name,raw,status", [
    ("pipelined: one answer, then the close", request("GET", "/status") * 3, 200),
    ("a body far over the limit, answered before it is read", request(
        "POST", "/standby", b"x" * 300_000, Authorization=f"Bearer {TOKEN}",
        Content_Type="application/json"), 413),
    ("a refusal before the body: no token", request("POST", "/standby", b"{}" * 5000), 401),
    ("chunked", request("POST", "/standby", b"2\r\n{}\r\n0\r\n\r\n",
                        Authorization=f"Bearer {TOKEN}", Transfer_Encoding="chunked"), 411),
    ("HEAD", request("HEAD", "/status"), 200),
    ("HTTP/1.0 without Host", b"GET /status HTTP/1.0\r\n\r\n", 200),
    ("HTTP/1.1 without Host", b"GET /status HTTP/1.1\r\n\r\n", 400),
    ("two Content-Lengths", b"POST /standby HTTP/1.1\r\nHost: v\r\nContent-Length: 2\r\n"
                            b"Content-Length: 3\r\n\r\n{}", 400),
    ("a head over 16 KiB", request("GET", "/status", X_Big="a" * 17_000), 431),
])
def test_edge_cases_are_answered_whole_and_never_reset(tmp_path: Path, name: str, raw: bytes,
                                                       status: int) -> None:
    method = raw.split(b" ")[0].decode()
    with live_server(tmp_path) as s:
        got = asyncio.run(fetch(s.port, raw, method=method))
    assert got.well_formed and got.status == status, (name, got)
    if method == "HEAD":
        assert got.body == b"" and int(got.headers["content-length"]) > 0


def test_a_request_sent_a_byte_at_a_time_is_answered(tmp_path: Path) -> None:
    async def go(port: int) -> Outcome:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for b in request("GET", "/status"):
            writer.write(bytes([b]))
            await writer.drain()
            await asyncio.sleep(0.002)
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return parse(data)

    with live_server(tmp_path) as s:
        got = asyncio.run(go(s.port))
    assert got.status == 200 and got.json()["node"] == "n1"
