"""The kernel watchdog (`watchdog = "/dev/watchdog"`), as Heartbeat's `watchdog` directive.

Linux watchdog API (Documentation/watchdog/watchdog-api.rst): opening the device arms it,
WDIOC_SETTIMEOUT sets its timeout in whole seconds, any write feeds it, and writing the magic
character "V" just before closing disarms it (unless the driver was built `nowayout`). The
daemon feeds it with every heartbeat it sends: a daemon that hangs or dies without the magic
close gets its node reset, the backstop behind the guard process. Without a watchdog device
(this kernel has none), the path may name a stand-in file for tests: a device that refuses
the ioctl is still fed, with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
from pathlib import Path

from vigil.errors import VigilError

log = logging.getLogger(__name__)

WDIOC_SETTIMEOUT = 0xC0045706  # _IOWR('W', 6, int)
WDIOC_GETTIMEOUT = 0x80045707  # _IOR('W', 7, int)


class Watchdog:
    def __init__(self, path: Path, timeout: int) -> None:
        self.path = path
        self.timeout = timeout
        self.fd: int | None = None
        self.feeds = 0
        self.errors = 0

    def open(self) -> None:
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            raise VigilError(f"watchdog {self.path}: {e.strerror}") from None
        try:
            buf = fcntl.ioctl(self.fd, WDIOC_SETTIMEOUT, struct.pack("i", self.timeout))
            granted = struct.unpack("i", buf)[0]
            log.info("watchdog %s armed: timeout %d s", self.path, granted)
        except OSError as e:
            if e.errno != errno.ENOTTY:
                raise VigilError(f"watchdog {self.path}: cannot set a {self.timeout} s "
                                 f"timeout: {e.strerror}") from None
            log.warning("watchdog %s is not a watchdog device (no timeout ioctl): feeding it "
                        "anyway", self.path)

    def feed(self) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, b"\0")
            self.feeds += 1
        except OSError as e:
            self.errors += 1
            if self.errors == 1:
                log.error("watchdog %s: cannot feed it: %s", self.path, e.strerror)

    def close(self) -> None:
        """Disarm (magic close) and close: only on a clean shutdown."""
        if self.fd is None:
            return
        try:
            os.write(self.fd, b"V")
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        log.info("watchdog %s disarmed", self.path)
