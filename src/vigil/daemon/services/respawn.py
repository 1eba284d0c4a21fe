"""Heartbeat's `respawn USER PROGRAM`: programs kept running beside the daemon.

Tasks: `respawn <program>` (`respawn`), one per program, stopped with the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import time

from vigil.model import Respawn
from vigil.resources import runner

log = logging.getLogger(__name__)


async def respawn(r: Respawn) -> None:
    """Keep `r` running as its user, restarting it after it exits, 1 s later at first and
    twice as long each time it dies young (up to 60 s)."""
    what = " ".join(r.argv)
    backoff = 1.0
    while True:
        t0 = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *r.argv, user=r.user, stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True)
        except (OSError, LookupError, ValueError) as e:
            log.error("respawn %s as %s: cannot start: %s; again in %g s", what, r.user,
                      e, backoff)
        else:
            log.info("respawn: started %s as %s (pid %d)", what, r.user, proc.pid)
            try:
                rc = await proc.wait()
            except asyncio.CancelledError:
                await runner.stop(proc, r.argv)
                raise
            log.warning("respawn: %s exited (%s); again in %g s", what,
                        runner.exit_text(rc), backoff)
        if time.monotonic() - t0 > 60:
            backoff = 1.0  # it ran a good while: start afresh
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 60.0)

