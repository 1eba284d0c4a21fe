"""What this node can run: every keepalive, the ping count, each link's own carrier and
each group's health checks go to the node.

Tasks: `health` (`health`). A health check that fails or times out says "cannot run here";
one group's slow check delays the others' by at most its timeout.
"""

from __future__ import annotations

import asyncio
import logging

from vigil.daemon.hub import Hub
from vigil.daemon.ping import Pinger
from vigil.daemon.services.groups import GroupWorkers

log = logging.getLogger(__name__)


async def health(hub: Hub, workers: GroupWorkers, pinger: Pinger | None) -> None:
    node = hub.node
    while True:
        hub.notes.due(hub.clock())
        if pinger is not None:
            hub.tell(node.set_ping(pinger.count(hub.clock())))
        for link in hub.shared.links:
            hub.tell(node.set_link_local(link.index, link.usable(), hub.clock()))
        for g in hub.cluster.groups:
            ok = True
            for agent in workers.agents.get(g.name, []):
                try:
                    async with asyncio.timeout(agent.timeout_for("monitor")):
                        ok = ok and await agent.healthy()
                except Exception as e:  # a health check that fails says "cannot run"
                    log.warning("%s health check failed: %s", agent.name, e)
                    ok = False
            if g.name not in node.local:
                continue  # removed by a reload while we asked
            hub.tell(node.set_eligible(g.name, ok))
        await asyncio.sleep(hub.cluster.timings.keepalive)
