"""Keep timers punctual under load, as Heartbeat's `realtime on` and keepalived do.

PLATFORM-NOTES measured a 100 ms asyncio timer with both cores busy: p99 lateness 8 ms
(max 17 ms) normally, 2.1 ms (max 3.7 ms) with SCHED_FIFO, mlockall and gc.freeze().
SCHED_RESET_ON_FORK keeps the resource agents we spawn out of the real-time class, and
MCL_ONFAULT locks only pages actually touched, so thread stacks and arenas that are mapped but
unused do not inflate the resident size. Each step that the system refuses is a warning, not
a failure: the daemon still works, only with looser timing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")

log = logging.getLogger(__name__)

PRIORITY = 50  # below the kernel's own threaded IRQs (50 too) and watchdog threads (99)
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4


def make_realtime() -> list[str]:
    """Ask for SCHED_FIFO and locked memory; return what was granted, for the log."""
    granted = []
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK,
                              os.sched_param(PRIORITY))
        granted.append(f"SCHED_FIFO priority {PRIORITY}")
    except OSError as e:
        log.warning("real-time scheduling refused (%s); timers may be late under load",
                    e.strerror)
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0:
        granted.append("memory locked")
    else:
        err = ctypes.get_errno()
        log.warning("mlockall refused (%s); the daemon may be paged out", os.strerror(err))
    return granted


def freeze_heap() -> None:
    """Move everything allocated so far out of the collector's view: start-up objects are
    never garbage, and a full collection over them is what makes long pauses."""
    gc.collect()
    gc.freeze()


def at_normal_priority(work: Callable[[], _T]) -> Callable[[], _T]:
    """`work` for a worker thread: the thread leaves the real-time class first (Linux
    schedules threads one by one), so that a long piece of work such as a reload's parse
    competes fairly with the node's services instead of starving them for its duration,
    while the event loop's thread keeps its SCHED_FIFO."""
    def run() -> _T:
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass  # not real-time to begin with
        return work()
    return run
