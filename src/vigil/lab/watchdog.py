"""A stand-in for a kernel watchdog device, for a lab node (this kernel has none).

A FIFO at `path` takes the writes vigil would send to /dev/watchdog (the daemon refuses
nothing: a FIFO answers the timeout ioctl with ENOTTY, which it warns about and feeds all
the same). A thread reads it: every byte is a feed, a "V" just before the last writer
closes is the magic close that disarms it. When no feed came for `timeout` seconds while
it was armed (every writer hung, or gone without the magic close), it "expires": it calls
`expire`, which acts out what the real device would do, resetting the node (LabCluster.reset:
its processes killed, its floating addresses gone). Each expiry is recorded in `expired`.
"""

from __future__ import annotations

import os
import select
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path


class StandInWatchdog:
    def __init__(self, path: Path, timeout: float, expire: Callable[[], None]) -> None:
        self.path = path
        self.timeout = timeout
        self.expire = expire
        self.feeds = 0
        self.disarmed = 0
        self.expired: list[float] = []  # monotonic times it fired
        self._stop = threading.Event()
        self._rebooted = threading.Event()
        if path.exists() and not stat.S_ISFIFO(path.stat().st_mode):
            raise ValueError(f"{path} exists and is not a FIFO")
        if not path.exists():
            os.mkfifo(path, 0o600)
        # Read side open (non-blocking) before any writer: vigil's open never blocks.
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="watchdog-stand-in",
                                        daemon=True)
        self._thread.start()

    def rebooted(self) -> None:
        """The node was reset by other means (the lab's reset of its host): a watchdog
        starts disarmed at boot, until vigil opens it again."""
        self._rebooted.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self._fd)

    def __enter__(self) -> StandInWatchdog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        armed = False
        last = 0.0
        tail = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.02)
            now = time.monotonic()
            if self._rebooted.is_set():
                self._rebooted.clear()
                armed = False
            if ready:
                try:
                    data = os.read(self._fd, 4096)
                except BlockingIOError:
                    data = b""
                if data:
                    self.feeds += len(data)
                    armed, last, tail = True, now, data[-1:]
                    continue
                # End of file: every writer closed. Disarmed only by a last "V".
                if armed and tail == b"V":
                    armed = False
                    self.disarmed += 1
                time.sleep(0.02)  # no writer: select says readable until one opens
            if armed and now - last > self.timeout:
                armed = False
                self.expired.append(now)
                self.expire()
