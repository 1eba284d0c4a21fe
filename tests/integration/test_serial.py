"""The serial link over a real pty pair (socat plays the null-modem cable): frames both ways,
200 random frames intact and in order, the links going unusable when the cable is cut, and
errors naming the device for paths that are no tty."""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.daemon.serial import SerialLink
from vigil.errors import VigilError
from vigil.wire.frame import MAX_FRAME

pytestmark = pytest.mark.integration

SOCAT = shutil.which("socat")


def plug(a: Path, b: Path) -> subprocess.Popen[bytes]:
    """A pty pair whose slaves appear as `a` and `b`, wired together by socat."""
    assert SOCAT is not None
    proc = subprocess.Popen([SOCAT, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    while not (a.exists() and b.exists()):
        if proc.poll() is not None or time.monotonic() > deadline:
            unplug(proc)
            pytest.fail("socat made no ptys within 5 s")
        time.sleep(0.01)
    return proc


def unplug(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=5)


@pytest.fixture
def cable(tmp_path: Path) -> Iterator[tuple[Path, Path, subprocess.Popen[bytes]]]:
    if SOCAT is None:
        pytest.skip("socat is not installed (it makes the pty pair)")
    a, b = tmp_path / "a", tmp_path / "b"
    proc = plug(a, b)
    try:
        yield a, b, proc
    finally:
        unplug(proc)


class Inbox:
    def __init__(self) -> None:
        self.frames: list[tuple[bytes, int]] = []
        self.changed = asyncio.Event()

    def __call__(self, frame: bytes, index: int) -> None:
        self.frames.append((frame, index))
        self.changed.set()

    async def wait_count(self, n: int) -> None:
        async with asyncio.timeout(20):
            while len(self.frames) < n:
                self.changed.clear()
                await self.changed.wait()


def test_frames_both_ways_and_in_order(cable: tuple[Path, Path, subprocess.Popen[bytes]]) -> None:
    a_path, b_path, _ = cable
    rng = random.Random(1055)
    frames = [rng.randbytes(rng.randint(1, MAX_FRAME)) for _ in range(200)]

    async def main() -> None:
        a, b = SerialLink(0, a_path, 19200), SerialLink(3, b_path, 19200)
        at_a, at_b = Inbox(), Inbox()
        await a.open(at_a)
        await b.open(at_b)
        try:
            assert (a.name, a.kind) == ("a", "serial")
            assert a.describe() == f"serial {a_path} at 19200 baud"
            a.send(b"ping")
            await at_b.wait_count(1)
            b.send(b"pong")
            await at_a.wait_count(1)
            assert at_b.frames == [(b"ping", 3)] and at_a.frames == [(b"pong", 0)]

            # Pace by what arrived: send keeps at most one frame pending and drops older ones,
            # so blasting 200 frames at once would (rightly) lose some.
            for i, f in enumerate(frames):
                a.send(f)
                await at_b.wait_count(i + 2)
            assert [f for f, _ in at_b.frames[1:]] == frames
            assert a.sent == 201 and a.send_errors == 0 and b.received == 201
            assert a.discarded == b.discarded == 0
            assert a.usable() and b.usable()
        finally:
            a.close()
            b.close()
            a.close()  # idempotent

    asyncio.run(main())


def test_burst_keeps_one_frame_pending(cable: tuple[Path, Path, subprocess.Popen[bytes]]) -> None:
    a_path, b_path, _ = cable
    rng = random.Random(1)
    frames = [rng.randbytes(rng.randint(1, MAX_FRAME)) for _ in range(200)]

    async def main() -> None:
        a, b = SerialLink(0, a_path, 115200), SerialLink(1, b_path, 115200)
        at_b = Inbox()
        await a.open(Inbox())
        await b.open(at_b)
        try:
            started = time.monotonic()
            for f in frames:
                a.send(f)
            assert time.monotonic() - started < 0.5, "send blocked"
            # Every frame is either written whole or dropped, once the last pending one drains.
            async with asyncio.timeout(5):
                while a.sent + a.send_errors < len(frames):
                    await asyncio.sleep(0.01)
            assert a.send_errors > 0, "the pty took the whole burst: nothing was tested"
            await at_b.wait_count(a.sent)
            await asyncio.sleep(0.2)
            got = [f for f, _ in at_b.frames]
            # Stubs of frames cut when a newer one replaced them arrive as junk frames (for
            # authentication to reject); the whole ones arrive intact and in order.
            whole = [f for f in got if f in frames]
            assert len(whole) == a.sent and len(got) - len(whole) <= a.send_errors
            assert whole == [f for f in frames if f in whole]
        finally:
            a.close()
            b.close()

    asyncio.run(main())


def test_cut_cable_makes_links_unusable_until_replugged(
        cable: tuple[Path, Path, subprocess.Popen[bytes]]) -> None:
    a_path, b_path, proc = cable

    async def main() -> None:
        a, b = SerialLink(0, a_path, 9600), SerialLink(1, b_path, 9600)
        at_a, at_b = Inbox(), Inbox()
        await a.open(at_a)
        await b.open(at_b)
        try:
            unplug(proc)
            async with asyncio.timeout(5):
                while a.usable() or b.usable():
                    for link in (a, b):
                        started = time.monotonic()
                        link.send(bytes(MAX_FRAME))
                        assert time.monotonic() - started < 0.1, "send blocked"
                    await asyncio.sleep(0.01)
            # Still no exception and no blocking once lost; the sends count as errors.
            for _ in range(5):
                a.send(b"x")
                b.send(b"x")
            assert a.send_errors >= 5 and b.send_errors >= 5

            # A new cable under the same names: both links reopen it and come back on the
            # first byte they read.
            again = await asyncio.to_thread(plug, a_path, b_path)
            try:
                async with asyncio.timeout(10):
                    while not (a.usable() and b.usable()):
                        a.send(b"hello b")
                        b.send(b"hello a")
                        await asyncio.sleep(0.1)
                assert (b"hello b", 1) in at_b.frames and (b"hello a", 0) in at_a.frames
            finally:
                a.close()
                b.close()
                unplug(again)
        finally:
            a.close()
            b.close()

    asyncio.run(main())


def test_open_errors_name_the_device(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tty"
    regular = tmp_path / "plain-file"
    regular.write_bytes(b"")

    async def open_(path: Path) -> str:
        link = SerialLink(0, path, 19200)
        with pytest.raises(VigilError) as info:
            await link.open(lambda frame, index: None)
        link.close()
        return str(info.value)

    message = asyncio.run(open_(missing))
    assert str(missing) in message and "No such file" in message
    message = asyncio.run(open_(regular))
    assert str(regular) in message and "not a terminal" in message
    message = asyncio.run(open_(tmp_path))
    assert str(tmp_path) in message and "directory" in message
