"""What this node can run: every keepalive, the ping count, each link's own carrier and
each group's health checks go to the node.

Tasks: `health` (`run`), which only works for groups with a check that needs IO (an OCF or
systemd agent; an address whose interface must be looked up again). Everything else is
answered synchronously in `check`, which the heartbeat tick calls (services/timers.py):
an ioctl per interface, no task switch and no timeout, which is most of the idle cost a
health pass had. A check that fails or times out says "cannot run here".
"""

from __future__ import annotations

import asyncio
import logging

from vigil.daemon.hub import Hub
from vigil.daemon.ping import Pinger
from vigil.daemon.services.groups import GroupWorkers
from vigil.model import Group

log = logging.getLogger(__name__)


class Health:
    def __init__(self, hub: Hub, workers: GroupWorkers, pinger: Pinger | None) -> None:
        self.hub = hub
        self.workers = workers
        self.pinger = pinger
        self._slow: list[Group] = []  # groups the task must check (IO)
        self._kick = asyncio.Event()

    def check(self) -> None:
        """One health pass, every keepalive."""
        hub, node = self.hub, self.hub.node
        hub.notes.due(hub.clock())
        if self.pinger is not None:
            hub.tell(node.set_ping(self.pinger.count(hub.clock())))
        for link in hub.shared.links:
            hub.tell(node.set_link_local(link.index, link.usable(), hub.clock()))
        slow = []
        for g in hub.cluster.groups:
            ok: bool | None = True
            for agent in self.workers.agents.get(g.name, []):
                now = agent.healthy_now()
                if now is None:
                    ok = None
                    break
                if not now:
                    ok = False
                    break
            if ok is None:
                slow.append(g)
            elif g.name in node.local:
                hub.tell(node.set_eligible(g.name, ok))
        if slow and not self._slow:  # a pass still running takes the next one's place
            self._slow = slow
            self._kick.set()

    async def run(self) -> None:
        node = self.hub.node
        while True:
            await self._kick.wait()
            self._kick.clear()
            for g in self._slow:
                ok = True
                for agent in self.workers.agents.get(g.name, []):
                    try:
                        async with asyncio.timeout(agent.timeout_for("monitor")):
                            ok = ok and await agent.healthy()
                    except Exception as e:  # a health check that fails says "cannot run"
                        log.warning("%s health check failed: %s", agent.name, e)
                        ok = False
                if g.name in node.local:  # (not removed by a reload while we asked)
                    self.hub.tell(node.set_eligible(g.name, ok))
            self._slow = []
