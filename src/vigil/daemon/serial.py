"""The serial heartbeat link: frames over a null-modem cable (Heartbeat's `serial /dev/ttyS0`).

Same duck-typed face as the UDP links of links.py; frames are SLIP-framed by wire/stream.py.
No task: a reader callback, a writer callback while a frame waits, a timer while lost.

The line is slow (a full frame can take 1.5 s at 19200 baud: stream.airtime), so send never
queues: one encoded frame at most waits, and a newer one replaces it (the newest heartbeat is
the one worth sending). A frame cut short is harmless: the next frame's leading END ends it
and authentication rejects the stub.

A failed device (EIO on write; EOF on read, which is what a hung-up line or a pty whose other
end closed gives) is closed and reopened every RETRY_INTERVAL seconds, so a replugged USB
adapter or a new pty comes back; the link is usable again from the first byte read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
from collections.abc import Callable
from pathlib import Path

from vigil.errors import VigilError
from vigil.model import SERIAL_BAUDS
from vigil.wire import stream

log = logging.getLogger(__name__)

Receive = Callable[[bytes, int], None]
SUPPORTED_BAUDS: tuple[int, ...] = tuple(b for b in SERIAL_BAUDS if hasattr(termios, f"B{b}"))
RETRY_INTERVAL = 1.0  # seconds between attempts to reopen a lost device
_READ_SIZE = 4096


def check_baud(baud: int) -> str | None:
    """Why `baud` cannot be used, or None if it can."""
    if baud in SUPPORTED_BAUDS:
        return None
    return f"baud {baud} is not supported (one of {', '.join(map(str, SUPPORTED_BAUDS))})"


class SerialLink:
    kind = "serial"

    def __init__(self, index: int, device: Path, baud: int) -> None:
        if (problem := check_baud(baud)) is not None:
            raise ValueError(problem)  # config accepts model.SERIAL_BAUDS only: a caller bug
        self.index = index
        self.device = device
        self.baud = baud
        self.name = device.name
        self.sent = self.send_errors = self.received = 0
        self._decoder = stream.Decoder()
        self._fd: int | None = None
        self._pending = b""  # what is left to write of the one frame waiting for the line
        self._usable = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receive: Receive | None = None
        self._retry: asyncio.TimerHandle | None = None

    @property
    def discarded(self) -> int:  # frames the stream decoder dropped (oversized, bad escape)
        return self._decoder.discarded

    async def open(self, receive: Receive) -> None:
        self._loop = asyncio.get_running_loop()
        self._receive = receive
        self._attach()

    def send(self, data: bytes) -> None:
        frame = stream.encode(data)
        if self._fd is None or self._pending:
            self.send_errors += 1  # device lost, or the older waiting frame dropped (docstring)
        if self._fd is not None:
            busy = bool(self._pending)
            self._pending = frame
            if not busy:
                self._flush()

    def usable(self) -> bool:
        return self._usable

    def describe(self) -> str:
        return f"serial {self.device} at {self.baud} baud"

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._release()

    def _attach(self) -> None:
        assert self._loop is not None
        self._fd = _open_tty(self.device, self.baud)
        self._loop.add_reader(self._fd, self._on_readable)

    def _release(self) -> None:
        if self._fd is None:
            return
        assert self._loop is not None
        if self._pending:
            self.send_errors += 1
            self._pending = b""
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        # The last close of a serial port waits for unsent output to drain (closing_wait, 30 s
        # by default; 4 KB at 1200 baud takes 34 s): a stalled loop with an armed watchdog is
        # worse than a lost heartbeat, so what the line has not sent yet is discarded.
        with contextlib.suppress(termios.error):
            termios.tcflush(self._fd, termios.TCOFLUSH)
        os.close(self._fd)
        self._fd = None

    def _flush(self) -> None:
        """Write what is pending; the writer callback is registered exactly while some is left."""
        assert self._fd is not None and self._loop is not None
        try:
            n = os.write(self._fd, self._pending)
        except BlockingIOError:
            n = 0
        except OSError as e:
            self._lose(e.strerror or str(e))  # counts the pending frame
            return
        self._pending = self._pending[n:]
        if self._pending:
            self._loop.add_writer(self._fd, self._flush)
        else:
            self.sent += 1
            self._loop.remove_writer(self._fd)

    def _on_readable(self) -> None:
        assert self._fd is not None and self._receive is not None
        try:
            data = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError as e:
            self._lose(e.strerror or str(e))
            return
        if not data:
            # VMIN=1 makes "nothing yet" EAGAIN, so EOF is a hangup; the fd stays readable,
            # and keeping its reader would spin.
            self._lose("hangup")
            return
        if not self._usable:
            log.info("recovered serial link=%s device=%s", self.name, self.device)
            self._usable = True
        for frame in self._decoder.feed(data):
            self.received += 1
            self._receive(frame, self.index)

    def _lose(self, reason: str) -> None:
        assert self._loop is not None
        if self._usable:
            log.warning("lost serial link=%s device=%s error=%s", self.name, self.device, reason)
        self._usable = False
        self._release()
        self._retry = self._loop.call_later(RETRY_INTERVAL, self._reopen)

    def _reopen(self) -> None:
        assert self._loop is not None
        self._retry = None
        try:
            self._attach()
        except VigilError:
            self._retry = self._loop.call_later(RETRY_INTERVAL, self._reopen)


def _open_tty(device: Path, baud: int) -> int:
    """Open `device` non-blocking in raw 8N1 at `baud`, or raise VigilError saying why."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        raise VigilError(f"serial link {device}: cannot open: {e.strerror}") from None
    problem = "not a terminal device"
    try:
        if os.isatty(fd):
            speed: int = getattr(termios, f"B{baud}")
            cc = termios.tcgetattr(fd)[6]
            cc[termios.VMIN] = 1  # with O_NONBLOCK: no data is EAGAIN, so reading nothing is EOF
            cc[termios.VTIME] = 0
            # iflag 0: no XON/XOFF (0x11, 0x13 are frame bytes), no CR/NL mapping, no parity
            # check; oflag 0: no output processing; lflag 0: no echo, lines or signals. cflag:
            # 8N1, no RTS/CTS, CLOCAL because a null-modem cable may not wire DCD.
            cflag = termios.CS8 | termios.CREAD | termios.CLOCAL
            termios.tcsetattr(fd, termios.TCSANOW, [0, 0, cflag, 0, speed, speed, cc])
            termios.tcflush(fd, termios.TCIFLUSH)  # bytes from before we listened are stale
            return fd
    except termios.error as e:
        problem = f"cannot configure: {e.args[-1]}"
    os.close(fd)
    raise VigilError(f"serial link {device}: {problem}")
