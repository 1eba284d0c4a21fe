"""DiskLink against real storage: a loop device, a plain file on /tmp, and a file on tmpfs.

Two links on the same device stand in for two nodes sharing a disk. A failing or hanging disk
is simulated by wrapping os.preadv/os.pwritev (the thread looks them up on every call), because
a real dead SAN cannot be made on demand: the wrapper raising EIO stands in for a disk whose
reads fail, and the wrapper sleeping for a disk whose IO hangs in the kernel.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.daemon.disk import DiskLink
from vigil.errors import VigilError
from vigil.wire import sectors

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices"),
]

INTERVAL = 0.05
STALL = 0.3
MiB = 1 << 20


class Peer:
    """What one node's engine sees: frames and mail, and that they arrive on the loop thread."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.frames: list[bytes] = []
        self.mail: list[bytes] = []
        self.loop_thread = threading.get_ident()

    def receive(self, data: bytes, link: int) -> None:
        assert link == self.index and threading.get_ident() == self.loop_thread
        self.frames.append(data)

    def on_mail(self, data: bytes) -> None:
        assert threading.get_ident() == self.loop_thread
        self.mail.append(data)


async def wait_until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


def make_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("losetup") is None:
        pytest.skip("needs losetup")
    backing = make_file(tmp_path / "disk.img", MiB)
    dev = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        yield Path(dev)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


@pytest.fixture(params=["loop", "file", "tmpfs"])
def device(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "loop":
        path: Path = request.getfixturevalue("loop_device")
        return path
    if request.param == "file":
        return make_file(tmp_path / "disk.img", MiB)  # tmp_path lives under /tmp
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    shm = Path("/dev/shm") / f"vigil-test-{os.getpid()}.img"
    request.addfinalizer(lambda: shm.unlink(missing_ok=True))
    return make_file(shm, MiB)


def pair(path: Path) -> tuple[DiskLink, DiskLink]:
    return (DiskLink(0, path, 0, 1, INTERVAL, STALL), DiskLink(1, path, 1, 0, INTERVAL, STALL))


async def exchange(path: Path) -> tuple[bool, bool]:
    a, b = pair(path)
    pa, pb = Peer(0), Peer(1)
    await a.open(pa.receive, pa.on_mail)
    await b.open(pb.receive, pb.on_mail)
    try:
        assert a.name == f"disk:{path.name}" and a.kind == "disk"
        assert a.describe() == f"disk {path} (slot 0, peer slot 1)"
        a.send(b"a1")
        b.send(b"b1")
        await wait_until(lambda: pb.frames == [b"a1"] and pa.frames == [b"b1"])
        await wait_until(lambda: a.usable() and b.usable())
        # Many cycles later, an unchanged slot has still been delivered once only.
        await asyncio.sleep(10 * INTERVAL)
        assert pb.frames == [b"a1"] and pa.frames == [b"b1"]
        a.send(b"a2")
        await wait_until(lambda: pb.frames == [b"a1", b"a2"])
        b.send(b"b2")
        await wait_until(lambda: pa.frames == [b"b1", b"b2"])
        assert a.sent >= 2 and b.received == 2 and a.send_errors == 0

        await asyncio.wait_for(a.write_mail(b"poison"), 2.0)
        await wait_until(lambda: pb.mail == [b"poison"])
        await asyncio.wait_for(b.clear_mail(), 2.0)
        assert sectors.unpack(read_sector(path, sectors.mailbox_offset(1))) is None
        # The same message again after a clear is a new message.
        await asyncio.wait_for(a.write_mail(b"poison"), 2.0)
        await wait_until(lambda: pb.mail == [b"poison", b"poison"])
        assert pa.mail == [] and a.last_error is None
        return a.direct, b.direct
    finally:
        a.close()
        b.close()
        a.close()  # idempotent


def read_sector(path: Path, offset: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, sectors.SECTOR, offset)
    finally:
        os.close(fd)


def test_exchange(device: Path) -> None:
    direct = asyncio.run(exchange(device))
    # Whether this storage took O_DIRECT (tmpfs does from Linux 6.6 on, a FUSE file may not):
    # captured, so shown with the test's output when it fails (or with `pytest -rP`), never
    # in the middle of the progress line.
    print(f"{device}: O_DIRECT={direct[0]}")
    assert direct[0] == direct[1], f"{device}: the two links disagree on O_DIRECT: {direct}"
    if device.is_block_device():
        assert direct[0], f"{device}: a loop device takes O_DIRECT, yet the link fell back"
    assert read_sector(device, 0)[:4] == b"VGLD"


def test_fallback_without_o_direct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def no_direct(path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_direct)
    path = make_file(tmp_path / "disk.img", MiB)
    assert asyncio.run(exchange(path)) == (False, False)


@pytest.mark.parametrize("what", ["small", "small_loop", "missing", "directory", "chardev"])
def test_unusable_paths(what: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if what == "small":
        path = make_file(tmp_path / "small.img", 3 * sectors.SECTOR)
    elif what == "small_loop":
        if shutil.which("losetup") is None:
            pytest.skip("needs losetup")
        backing = make_file(tmp_path / "small.img", 3 * sectors.SECTOR)
        path = Path(subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                                   capture_output=True, text=True).stdout.strip())
        request.addfinalizer(lambda: subprocess.run(["losetup", "-d", str(path)], check=False))
    elif what == "missing":
        path = tmp_path / "nope"
    elif what == "directory":
        path = tmp_path
    else:
        path = Path("/dev/null")
    link = DiskLink(0, path, 0, 1, INTERVAL, STALL)
    with pytest.raises(VigilError) as info:
        asyncio.run(link.open(lambda d, i: None, lambda d: None))
    message = str(info.value)
    print(message)
    assert str(path) in message
    if what.startswith("small"):
        assert "12288 bytes" in message and "16384" in message
    link.close()


class Disk:
    """Wraps os.preadv/os.pwritev for one descriptor: "ok", "eio" or "hang"."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fd = -1
        self.reads = self.writes = "ok"
        real_read, real_write = os.preadv, os.pwritev

        def preadv(fd: int, bufs: Any, offset: int) -> int:
            self._fault(fd, self.reads)
            return real_read(fd, bufs, offset)

        def pwritev(fd: int, bufs: Any, offset: int) -> int:
            self._fault(fd, self.writes)
            return real_write(fd, bufs, offset)

        monkeypatch.setattr(os, "preadv", preadv)
        monkeypatch.setattr(os, "pwritev", pwritev)

    def _fault(self, fd: int, mode: str) -> None:
        if fd != self.fd:
            return
        if mode == "eio":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        if mode == "hang":
            time.sleep(4 * STALL)
        if mode == "slow":  # two reads a cycle: late enough to be said, not to stall the link
            time.sleep(0.3 * STALL)


def test_slow_disk_is_said_once_and_shown(loop_device: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """A device whose IO takes most of the stall budget spends deadtime: the link says so
    (once a minute at most) and keeps the slowest cycle for `vigil status`."""
    disk = Disk(monkeypatch)

    async def main() -> None:
        a = DiskLink(0, loop_device, 0, 1, INTERVAL, STALL)
        await a.open(lambda d, i: None, lambda d: None)
        disk.fd = a._fd
        try:
            await wait_until(a.usable)
            assert a.slowest < 0.5 * STALL
            disk.reads = "slow"
            await wait_until(lambda: a.slowest >= 0.6 * STALL, timeout=4 * STALL)
            await asyncio.sleep(3 * STALL)  # more slow cycles: no more lines
            assert a.usable()
        finally:
            disk.reads = "ok"
            a.close()

    with caplog.at_level("WARNING", logger="vigil.daemon.disk"):
        asyncio.run(main())
    slow = [r.getMessage() for r in caplog.records if "disk link slow" in r.getMessage()]
    assert len(slow) == 1, slow
    assert f"link=disk:{loop_device.name}" in slow[0] and "budget_ms=150" in slow[0], slow


def test_failing_and_hanging_disk(loop_device: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = Disk(monkeypatch)

    async def main() -> None:
        a, b = pair(loop_device)
        pa, pb = Peer(0), Peer(1)
        await a.open(pa.receive, pa.on_mail)
        await b.open(pb.receive, pb.on_mail)
        disk.fd = a._fd
        try:
            await wait_until(a.usable)
            assert not pa.mail

            disk.reads = "eio"  # a disk whose reads fail
            await wait_until(lambda: not a.usable())
            assert a.last_error is not None and "Input/output error" in a.last_error
            assert b.usable()
            disk.reads = "ok"
            await wait_until(a.usable)
            assert a.last_error is None

            disk.writes = "eio"
            with pytest.raises(VigilError, match="Input/output error"):
                await asyncio.wait_for(a.write_mail(b"poison"), 2.0)
            a.send(b"lost")
            await wait_until(lambda: a.send_errors > 0)
            disk.writes = "ok"
            await wait_until(lambda: pb.frames == [b"lost"])  # retried once the disk is back

            disk.reads = "hang"  # a disk whose IO hangs: the thread is stuck, the loop is not
            t0 = time.monotonic()
            await wait_until(lambda: not a.usable(), timeout=3 * STALL)
            assert a.last_error is None and b.usable()
            # A poison pill the caller gave up on is not written when the disk comes back.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await a.write_mail(b"late poison")
            assert time.monotonic() - t0 < 3 * STALL
            disk.reads = "ok"
            await wait_until(a.usable)
            await asyncio.sleep(5 * INTERVAL)
            assert pb.mail == []

            disk.reads = "hang"
            await asyncio.sleep(2 * INTERVAL)
            t0 = time.monotonic()
            a.close()  # does not wait for the stuck thread
            assert time.monotonic() - t0 < 1.0
            assert a._thread is not None and a._thread.is_alive()
            disk.reads = "ok"
            a._thread.join(4 * STALL * 3)
            assert not a._thread.is_alive()
            with pytest.raises(VigilError, match="not open"):
                await a.write_mail(b"x")
        finally:
            disk.reads = disk.writes = "ok"
            a.close()
            b.close()

    asyncio.run(main())
