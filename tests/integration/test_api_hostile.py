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

from vigil.daemon.api.server import LOG_BURST
from vigil.ratelimit import RateLimiter

from tests.integration.apiclient import (TOKEN, Outcome, fetch, fetch_blocking, get,
                                         live_server, request, slow_client)


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
    answer, a 200 or a refusal with the documented JSON and Retry-After; none a reset."""
    with live_server(tmp_path) as s:
        with ThreadPoolExecutor(500) as pool:
            got = list(pool.map(lambda i: fetch_blocking(s.port, request("GET", "/status"),
                                                         src=f"127.0.0.{10 + i % 5}"),
                                range(500)))
        stats = s.server.statistics()
    print(f"\n500 concurrent: {dict(kinds(got))}, {stats}")
    assert all(o.well_formed for o in got), kinds(got)
    refused = [o for o in got if o.status != 200]
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
