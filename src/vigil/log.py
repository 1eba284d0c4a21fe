"""Logging set-up and the daemon's log format.

Lines read like Heartbeat's (`Link n2:eth0 dead.`, `node n2: is dead`) with a timestamp to
the millisecond, the node name and a level word, to stderr and optionally to a file.

Under systemd, stderr is a stream into journald (packaging/vigil.service). journald stamps
each line itself, so there the timestamp is dropped, and it reads a leading `<N>` as the
line's syslog priority (sd-daemon.h): with it, `journalctl -p warning -u vigil` shows the
warnings and errors only, and every line keeps its priority, a traceback's included.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from vigil.ratelimit import Allowed, RateLimiter

LEVEL_WORDS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "WARN",
               logging.ERROR: "ERROR", logging.CRITICAL: "CRIT"}

# sd-daemon.h's SD_CRIT, SD_ERR, SD_WARNING, SD_INFO; anything lower is SD_DEBUG (7).
SYSLOG_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
                     (logging.INFO, 6))


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level; levels in between take the one below."""
    for level, priority in SYSLOG_PRIORITIES:
        if levelno >= level:
            return priority
    return 7


def under_journald(environ: Mapping[str, str], stderr_fd: int) -> bool:
    """Whether `stderr_fd` is the stream systemd connected to journald: JOURNAL_STREAM holds
    that stream's "device:inode" (systemd.exec(5)). Matching the descriptor, not merely
    seeing the variable, matters: a child or a redirection (`vigil daemon 2>file`) inherits
    the variable with another stderr."""
    value = environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not (sep and (dev + ino).isascii() and dev.isdecimal() and ino.isdecimal()):
        return False
    try:
        st = os.fstat(stderr_fd)
    except (OSError, ValueError, OverflowError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class _Formatter(logging.Formatter):
    """`journald`: no timestamp, and every line of the text led by the priority `<N>`."""

    def __init__(self, node: str, journald: bool = False) -> None:
        if journald:
            super().__init__("vigil[%(node)s]: %(word)s: %(message)s")
        else:
            super().__init__("%(asctime)s.%(msecs)03d vigil[%(node)s]: %(word)s: %(message)s",
                             "%Y-%m-%d %H:%M:%S")
        self.node = node
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        record.node = self.node
        record.word = LEVEL_WORDS.get(record.levelno, record.levelname)
        text = super().format(record)
        if not self.journald:
            return text
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


def _stderr_fd() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # None, closed, or not a file (pytest)
        return -1


def setup(node: str, log_file: Path | None = None, debug: bool = False) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    stderr = logging.StreamHandler(sys.stderr)
    journald = under_journald(os.environ, _stderr_fd())
    stderr.setFormatter(_Formatter(node, journald))
    root.addHandler(stderr)
    if log_file is not None:
        file = logging.FileHandler(log_file)
        file.setFormatter(_Formatter(node))
        root.addHandler(file)
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.WARNING)


class LimitedLog:
    """A logger for lines untrusted input can cause: each key's lines go through a
    RateLimiter, and the count held back rides on the next line allowed under that key, as
    ` (held back before this: suppressed=N)`. `clock` is the caller's (monotonic) time."""

    def __init__(self, logger: logging.Logger, per_second: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.limit = RateLimiter(per_second, burst)
        self.clock = clock

    def log(self, key: str, level: int, msg: str, *args: object,
            exc_info: bool = False) -> bool:
        """Log msg % args unless too many of `key` went out lately; whether it was."""
        verdict = self.limit.check(key, self.clock())
        if not isinstance(verdict, Allowed):
            return False
        if verdict.suppressed:
            msg += " (held back before this: suppressed=%d)"
            args = (*args, verdict.suppressed)
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True
