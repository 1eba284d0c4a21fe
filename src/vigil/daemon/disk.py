"""The disk heartbeat link: a shared block device (or file) with one slot per node, like SBD.

Layout in wire/sectors.py. Each cycle the link writes this node's latest frame into its own
HEARTBEAT sector, reads the peer's HEARTBEAT sector and its own MAILBOX sector, and hands what
changed to the event loop. A slot that does not move is not delivered again (nor at all when
it never moved since our start): on a disk, a dead peer's last frame stays there forever, so
only a moving slot says the peer is alive.

Threads: one daemon thread per link does all the IO, because disk IO can hang for minutes (a
dead SAN path) and must never block the event loop. The thread owns the descriptor and closes
it when it ends; `close()` waits for it only briefly, so a thread stuck in the kernel is left
behind rather than having its descriptor closed (and the number reused) under it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import mmap
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vigil.errors import VigilError
from vigil.log import LimitedLog
from vigil.wire import sectors

log = logging.getLogger(__name__)

_JOIN_TIMEOUT = 0.5  # close() must not hang the daemon's shutdown behind a stuck disk
_Job = tuple[int, bytes, "asyncio.Future[None]"]


class DiskLink:
    kind = "disk"

    def __init__(self, index: int, path: Path, my_slot: int, peer_slot: int, interval: float,
                 stall: float) -> None:
        self.index, self.path, self.my_slot, self.peer_slot = index, path, my_slot, peer_slot
        self.interval, self.stall = interval, stall
        self.name = f"disk:{path.name}"
        self.sent = self.send_errors = self.received = 0
        self.last_error: str | None = None
        self.direct = False  # O_DIRECT in use: reads bypass the page cache
        self._fd = -1
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: bytes | None = None  # newest sector not yet written; older ones dropped
        self._jobs: list[_Job] = []
        self._ok_at: float | None = None  # when the last IO cycle succeeded; None if it failed
        self._closed = False
        # One cycle's IO (mail, heartbeat, two reads) taking more than half the stall budget
        # eats into deadtime: said, at most once a minute, with the slowest seen so far.
        self.slowest = 0.0  # seconds, the slowest IO cycle since start
        self._slow_log = LimitedLog(log, 1 / 60, 1)

    def describe(self) -> str:
        return f"disk {self.path} (slot {self.my_slot}, peer slot {self.peer_slot})"

    async def open(self, receive: Callable[[bytes, int], None],
                   on_mail: Callable[[bytes], None]) -> None:
        loop = asyncio.get_running_loop()
        self._fd = self._open_checked(sectors.min_size(max(self.my_slot, self.peer_slot) + 1))
        self._thread = threading.Thread(target=self._run, args=(loop, receive, on_mail),
                                        name=f"vigil-{self.name}", daemon=True)
        self._thread.start()

    def send(self, data: bytes) -> None:
        sector = sectors.pack(data)
        with self._lock:
            self._pending = sector

    async def write_mail(self, frame: bytes) -> None:
        await self._submit(sectors.mailbox_offset(self.peer_slot), sectors.pack(frame))

    async def clear_mail(self) -> None:
        await self._submit(sectors.mailbox_offset(self.my_slot), bytes(sectors.SECTOR))

    def usable(self) -> bool:
        ok_at = self._ok_at
        return ok_at is not None and time.monotonic() - ok_at < self.stall

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is None and self._fd >= 0:
            os.close(self._fd)
        elif self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT)
            if self._thread.is_alive():
                log.warning("abandoned disk IO thread link=%s: IO still hung", self.name)
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for _, _, fut in jobs:
            if not fut.done():
                fut.set_exception(VigilError(f"{self.describe()}: link closed"))

    async def _submit(self, offset: int, sector: bytes) -> None:
        if self._closed or self._thread is None:
            raise VigilError(f"{self.describe()}: link not open")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._jobs.append((offset, sector, fut))
        self._wake.set()
        await fut

    def _open_checked(self, needed: int) -> int:
        where = f"disk heartbeat {self.path}"
        try:
            mode = os.stat(self.path).st_mode
        except OSError as e:
            raise VigilError(f"{where}: {e.strerror}") from None
        if not (stat.S_ISBLK(mode) or stat.S_ISREG(mode)):
            raise VigilError(f"{where}: not a block device or regular file")
        flags = os.O_RDWR | os.O_CLOEXEC
        try:
            try:
                fd = os.open(self.path, flags | os.O_DIRECT | os.O_DSYNC)
                self.direct = True
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                # No O_DIRECT here (some FUSE and older tmpfs): cached IO with fsync instead,
                # fine for a file on one host but not for storage shared by two.
                log.warning("no O_DIRECT link=%s path=%s: using fsync", self.name, self.path)
                fd = os.open(self.path, flags)
        except OSError as e:
            raise VigilError(f"{where}: {e.strerror}") from None
        try:
            size = os.lseek(fd, 0, os.SEEK_END)  # block devices too, unlike st_size
        except OSError as e:
            os.close(fd)
            raise VigilError(f"{where}: cannot read its size: {e.strerror}") from None
        if size < needed:
            os.close(fd)
            raise VigilError(f"{where}: {size} bytes, needs at least {needed} "
                             f"(slots {self.my_slot} and {self.peer_slot})")
        return fd

    def _run(self, loop: asyncio.AbstractEventLoop, receive: Callable[[bytes, int], None],
             on_mail: Callable[[bytes], None]) -> None:
        # O_DIRECT needs memory aligned to the device block: anonymous mmaps are page-aligned.
        rbuf, wbuf = mmap.mmap(-1, sectors.SECTOR), mmap.mmap(-1, sectors.SECTOR)
        # The peer's slot as first read is a baseline, never delivered: a dead peer's last
        # frame stays on the disk forever and must not make it look alive at our start.
        baseline = True
        seen_peer: bytes | None = None
        seen_mail: bytes | None = None
        try:
            while not self._stop.is_set():
                self._wake.clear()  # before taking the jobs, so that none waits a whole interval
                began = time.monotonic()
                try:
                    if self._write_mail(loop, wbuf):
                        # Our mailbox was just cleared: whatever is read there from now on
                        # is new, even a copy of the last message (the peer may write it
                        # again between our clear and our read; CI saw that one missed).
                        seen_mail = None
                    self._write_heartbeat(wbuf)
                    peer = sectors.unpack(self._read(rbuf, self.peer_slot, mailbox=False))
                    mail = sectors.unpack(self._read(rbuf, self.my_slot, mailbox=True))
                except OSError as e:
                    if self._ok_at is not None or self.last_error is None:
                        log.warning("disk link failed link=%s error=%s", self.name, e.strerror)
                    self._ok_at, self.last_error = None, f"{self.path}: {e.strerror or e}"
                else:
                    if peer is not None and peer != seen_peer and not baseline:
                        self.received += 1
                        loop.call_soon_threadsafe(receive, peer, self.index)
                    if mail is not None and mail != seen_mail:
                        loop.call_soon_threadsafe(on_mail, mail)
                    seen_peer, seen_mail, baseline = peer, mail, False
                    if self._ok_at is None:
                        log.info("disk link up link=%s", self.name)
                    self._ok_at, self.last_error = time.monotonic(), None
                    self._took(self._ok_at - began)
                self._wake.wait(self.interval)
            try:  # the goodbye sent just before close() should reach the disk too
                self._write_heartbeat(wbuf)
            except OSError:
                pass
        except RuntimeError:  # the event loop is closed: nobody left to deliver to
            pass
        finally:
            os.close(self._fd)
            rbuf.close()
            wbuf.close()

    def _took(self, seconds: float) -> None:
        self.slowest = max(self.slowest, seconds)
        if seconds <= self.stall / 2:
            return
        self._slow_log.log("slow", logging.WARNING, "disk link slow link=%s cycle_ms=%.0f "
                           "budget_ms=%.0f slowest_ms=%.0f: the device's latency eats into "
                           "deadtime", self.name, seconds * 1000, self.stall * 500,
                           self.slowest * 1000)

    def _write_mail(self, loop: asyncio.AbstractEventLoop, buf: mmap.mmap) -> bool:
        """Write the queued mailbox sectors; True when our own mailbox was cleared."""
        with self._lock:
            jobs, self._jobs = self._jobs, []
        error: OSError | None = None
        cleared = False
        for offset, sector, fut in jobs:
            if fut.cancelled():  # the caller gave up: a poison pill landing late is worse
                continue
            try:
                self._write(buf, offset, sector)
                cleared |= offset == sectors.mailbox_offset(self.my_slot)
                loop.call_soon_threadsafe(_settle, fut, None)
            except OSError as e:
                error = e
                loop.call_soon_threadsafe(_settle, fut, f"{self.describe()}: {e.strerror}")
        if error is not None:
            raise error
        return cleared

    def _write_heartbeat(self, buf: mmap.mmap) -> None:
        with self._lock:
            pending = self._pending
        if pending is None:
            return
        try:
            self._write(buf, sectors.heartbeat_offset(self.my_slot), pending)
        except OSError:
            self.send_errors += 1
            raise  # still pending: retried next cycle unless a newer frame replaces it
        self.sent += 1
        with self._lock:
            if self._pending is pending:
                self._pending = None

    def _write(self, buf: mmap.mmap, offset: int, sector: bytes) -> None:
        buf[:] = sector
        if os.pwritev(self._fd, [buf], offset) != sectors.SECTOR:
            raise OSError(errno.EIO, "short write")
        if not self.direct:
            os.fsync(self._fd)

    def _read(self, buf: mmap.mmap, slot: int, mailbox: bool) -> bytes:
        offset = sectors.mailbox_offset(slot) if mailbox else sectors.heartbeat_offset(slot)
        if os.preadv(self._fd, [buf], offset) != sectors.SECTOR:
            raise OSError(errno.EIO, "short read")
        return bytes(buf)


def _settle(fut: asyncio.Future[None], err: str | None) -> None:
    if fut.done():  # cancelled by the caller's timeout meanwhile
        return
    if err is None:
        fut.set_result(None)
    else:
        fut.set_exception(VigilError(err))
