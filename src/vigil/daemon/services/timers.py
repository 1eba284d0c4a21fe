"""The clock's inputs: heartbeats out on a fixed grid, and systemd's watchdog. (The node's
own deadlines are one timer the hub re-arms: hub.py.)

Tasks: `heartbeat` (`Beat.run`: a heartbeat on every link every keepalive, then the health
pass; a grid slot missed while frozen or starved is skipped, never sent in a burst) and
`systemd watchdog` (WATCHDOG=1 from the event loop itself, so a loop that hangs stops
sending it and systemd restarts the daemon where no kernel watchdog exists). The beat is a
timer callback, not a sleeping task: one wakeup per keepalive instead of two; its task only
waits, so a failure in a beat still ends the TaskGroup as a failed task would.
"""

from __future__ import annotations

import asyncio
import logging

from vigil.daemon.hub import Hub
from vigil.daemon.services.health import Health

log = logging.getLogger(__name__)


class Beat:
    def __init__(self, hub: Hub, health: Health) -> None:
        self.hub = hub
        self.health = health
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._failed: asyncio.Future[None] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._failed = loop.create_future()
        self._due = loop.time()
        self._beat()
        try:
            await self._failed
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def _beat(self) -> None:
        assert self._failed is not None
        try:
            self.hub.send_all()
            self.health.check()
            loop = asyncio.get_running_loop()
            self._due += self.hub.cluster.timings.keepalive
            now = loop.time()
            if self._due < now:  # we were frozen or starved: skip missed slots, no burst
                self._due = now + self.hub.cluster.timings.keepalive
            self._timer = loop.call_at(self._due, self._beat)
        except Exception as e:  # noqa: BLE001 - handed to the task, which fails with it
            if not self._failed.done():
                self._failed.set_exception(e)


async def systemd_watchdog(hub: Hub) -> None:
    interval = hub.notifier.watchdog_interval()
    assert interval is not None
    log.info("systemd watchdog: a keepalive every %.0f ms", interval * 1000)
    while True:
        hub.notifier.watchdog()
        await asyncio.sleep(interval)
