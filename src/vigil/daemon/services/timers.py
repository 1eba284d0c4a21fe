"""The clock's inputs: heartbeats out on a fixed grid, the node's deadlines, systemd's
watchdog.

Tasks: `heartbeat` (`heartbeats`: a heartbeat on every link every keepalive; a grid slot
missed while frozen or starved is skipped, never sent in a burst), `deadlines` (sleeps until
the node's next deadline, woken early whenever the hub processed an input) and `systemd
watchdog` (WATCHDOG=1 from the event loop itself, so a loop that hangs stops sending it and
systemd restarts the daemon where no kernel watchdog exists).
"""

from __future__ import annotations

import asyncio
import logging

from vigil.daemon.hub import Hub

log = logging.getLogger(__name__)


async def heartbeats(hub: Hub) -> None:
    loop = asyncio.get_running_loop()
    interval = hub.cluster.timings.keepalive
    due = loop.time()
    while True:
        hub.send_all()
        due += interval
        now = loop.time()
        if due < now:  # we were frozen or starved: skip missed slots, do not burst
            due = now + interval
        await asyncio.sleep(due - now)


async def deadlines(hub: Hub) -> None:
    while True:
        hub.changed.clear()
        deadline = hub.node.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - hub.clock())
        try:
            async with asyncio.timeout(timeout):
                await hub.changed.wait()
        except TimeoutError:
            hub.tick()


async def systemd_watchdog(hub: Hub) -> None:
    interval = hub.notifier.watchdog_interval()
    assert interval is not None
    log.info("systemd watchdog: a keepalive every %.0f ms", interval * 1000)
    while True:
        hub.notifier.watchdog()
        await asyncio.sleep(interval)
