"""Resource monitors: one task per monitored resource while its group runs here.

Tasks: `monitor <resource>` (`_monitor`), started and renewed per group (`start`), so a
reload that changes a group replaces its monitors. A check runs beside nothing: it waits
while the group has work queued, and the group's worker cancels it before any action.
"""

from __future__ import annotations

import asyncio
import logging

from vigil.daemon.hub import Hub
from vigil.daemon.services.groups import GroupWorkers
from vigil.model import Group, Monitor
from vigil.resources.base import Agent
from vigil.wire.messages import GroupState

log = logging.getLogger(__name__)


class Monitors:
    def __init__(self, hub: Hub, workers: GroupWorkers) -> None:
        self.hub = hub
        self.workers = workers
        self.tg: asyncio.TaskGroup | None = None  # set by the app once it runs
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}

    def start(self, g: Group) -> None:
        assert self.tg is not None
        self.stop(g.name)
        self._tasks[g.name] = [
            self.tg.create_task(self._monitor(g, i, r.monitor), name=f"monitor {r.name}")
            for i, r in enumerate(g.resources) if r.monitor is not None]

    def stop(self, name: str) -> None:
        for t in self._tasks.pop(name, []):
            t.cancel()

    async def _monitor(self, group: Group, index: int, mon: Monitor) -> None:
        """Check one resource every `mon.interval` while its group runs here."""
        node = self.hub.node
        agent = self.workers.agents[group.name][index]
        while True:
            await pause(agent, mon.interval)
            if node.local[group.name] is not GroupState.RUNNING or \
                    self.workers.pending[group.name]:
                continue
            t0 = self.hub.clock()
            check = asyncio.create_task(check_once(agent, mon.timeout or
                                                   agent.timeout_for("monitor")))
            self.workers.checks[group.name].add(check)
            try:
                await asyncio.wait({check})  # no exception when the worker cancels it
            finally:
                self.workers.checks[group.name].discard(check)
            if check.cancelled() or node.local[group.name] is not GroupState.RUNNING:
                continue  # an action began meanwhile: this result says nothing
            kind, detail = check.result()
            if kind:
                log.error("%s monitor: %s in %.0f ms", agent.name, detail,
                          (self.hub.clock() - t0) * 1000)
                self.hub.tell(node.resource_failed(group.name, index, kind, detail,
                                                   self.hub.clock()))


async def pause(agent: Agent, interval: float) -> None:
    """`interval` s, or until the agent says its resource changed (Agent.changed), if
    sooner. A `changed` that fails is ignored: the interval bounds the wait anyway."""
    loop = asyncio.get_running_loop()
    end = loop.time() + interval
    waker = asyncio.ensure_future(agent.changed())
    try:
        done, _ = await asyncio.wait({waker}, timeout=interval)
        for w in done:
            if not w.cancelled() and w.exception() is not None:
                log.debug("%s: changed() failed: %s", agent.name, w.exception())
                await asyncio.sleep(max(0.0, end - loop.time()))  # the rest of the interval
    finally:
        waker.cancel()


async def check_once(agent: Agent, timeout: float) -> tuple[str, str]:
    """One monitor: ("", "") when fine, else the failure's kind and what it said."""
    try:
        async with asyncio.timeout(timeout):
            if not await agent.monitor():
                return "not_running", "not running"
    except TimeoutError:
        return "soft", f"monitor timed out after {timeout:g} s"
    except asyncio.CancelledError:
        raise
    except Exception as e:  # an agent failure must never take the daemon down
        return getattr(e, "kind", "soft"), str(e) or type(e).__name__
    return "", ""
