"""Live reload (reconfig.py plans it): SIGHUP or `vigil reload` applies only the difference.

No task of its own: `reload` runs in the control request or in a task the SIGHUP handler
starts (`on_signal`, joined to the app's TaskGroup). A bad or unsupported configuration is
refused whole, with its reasons, and nothing changes. Otherwise one synchronous step
(`_apply`) switches the model, and each changed or removed group's worker does the rest
between its other actions (`_Replace`, `Retire`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Callable

from vigil import reconfig
from vigil.control import protocol as p
from vigil.daemon.hub import Hub
from vigil.daemon.realtime import at_normal_priority
from vigil.daemon.services.groups import GroupWorkers
from vigil.daemon.services.guard_watch import GuardWatch
from vigil.daemon.services.monitors import Monitors
from vigil.errors import VigilError
from vigil.model import Cluster, Group
from vigil.resources import build
from vigil.resources.base import Agent
from vigil.wire.messages import GroupState

log = logging.getLogger(__name__)

Reloader = Callable[[], tuple[Cluster, bytes]]


class Reload:
    def __init__(self, hub: Hub, workers: GroupWorkers, monitors: Monitors,
                 guard: GuardWatch | None, reloader: Reloader | None,
                 follow: Callable[[Cluster], None]) -> None:
        self.hub = hub
        self.workers = workers
        self.monitors = monitors
        self.guard = guard
        self.reloader = reloader
        self.follow = follow  # the notify hooks and the balancer follow the new configuration
        self.lock = asyncio.Lock()
        self.tg: asyncio.TaskGroup | None = None  # set by the app once it runs

    def on_signal(self) -> None:
        log.info("SIGHUP: reloading the configuration")
        assert self.tg is not None
        self.tg.create_task(self._logged(), name="reload")

    async def _logged(self) -> None:
        try:
            await self.reload()  # it logs its own refusal
        except Exception:  # a bug in a reload must not end the daemon's TaskGroup
            log.exception("reload failed")

    async def reload(self) -> p.Response:
        """Read the configuration again and apply only the difference (reconfig.py)."""
        hub = self.hub

        def refuse(why: str) -> p.Response:
            log.error("reload refused; the running configuration stays: %s", why)
            return p.Response(False, None, p.ErrorCode.REFUSED, why)

        if self.reloader is None:
            return refuse("this daemon was started without a configuration file to re-read")
        if hub.leaving:
            return refuse("this node is shutting down")
        async with self.lock:
            node = hub.node
            try:  # the parse in a worker thread, out of the real-time class (realtime.py)
                new, key = await asyncio.to_thread(at_normal_priority(self.reloader))
            except VigilError as e:
                return refuse(str(e))
            if hub.leaving:
                return refuse("this node is shutting down")
            plan = reconfig.plan(hub.cluster, new)
            if key != hub.shared.key:
                plan.refused.append("the cluster key changed")
            if plan.refused:
                return refuse("these changes need a restart of both nodes: "
                              + "; ".join(plan.refused))
            for g in plan.removed + [c.old for c in plan.changed if c.restarts]:
                if node.local.get(g.name) is GroupState.FAILED:
                    return refuse(f"group {g.name} failed to stop here: run `vigil resource "
                                  f"cleanup {g.name}` before changing or removing it")
            for g in [*plan.added, *plan.removed, *(c.group for c in plan.changed)]:
                if g.promotable or g.name in hub.node.promotable:
                    return refuse(f"group {g.name} is promotable: adding, changing or "
                                  f"removing one takes a restart of the daemon, not a reload")
            for g in plan.added:
                if g.name in hub.retiring:
                    return refuse(f"group {g.name} is still being removed here (an earlier "
                                  f"reload); reload again once it is gone")
            if plan.empty:
                log.info("reload: the configuration did not change")
                return p.Response(True, {"message": "no change", "changes": []})
            hub.notifier.reloading()
            try:
                try:  # everything that can fail, before anything changes
                    built: dict[str, list[Agent]] = {}
                    for g in plan.added:
                        built[g.name] = [build(r, hub.shared.host) for r in g.resources]
                    for c in plan.changed:
                        built[c.group.name] = [build(r, hub.shared.host)
                                               for r in c.group.resources[c.index:]]
                    for agent in (a for agents in built.values() for a in agents):
                        await agent.prepare()
                except Exception as e:
                    return refuse(f"cannot prepare the new resources: {e}")
                lines = plan.lines()
                for line in lines:
                    log.info("reload: %s", line)
                self._apply(new, plan, built)
                for g in plan.added:  # new groups: probed, then the normal rules
                    found, missing = await self.workers.probe_parts(g)
                    hub.log(node.reloading.probed_new(g.name, found, missing))
                hub.process()
            finally:  # systemd leaves "reloading" only on READY=1, refused or not
                hub.notifier.ready(f"{hub.shared.me}: configuration reloaded")
            return p.Response(True, {"message": f"reloaded: {len(lines)} change(s)",
                                     "changes": lines})

    def _apply(self, new: Cluster, plan: reconfig.Plan, built: dict[str, list[Agent]]) -> None:
        """Switch to `new` in one synchronous step; the group workers then do the rest."""
        hub = self.hub
        assert self.tg is not None
        for g in plan.removed:
            self.monitors.stop(g.name)  # a check must not report on a group now unknown
            hub.retiring[g.name] = g
            self.workers.queue(g.name, Retire(self, g))
        hub.shared.cluster = new
        hub.node.reloading.reconfigure(new, [g.name for g in plan.added])
        for c in plan.changed:
            self.monitors.stop(c.group.name)
            self.workers.queue(c.group.name, _Replace(self, c.old, c.group, c.index,
                                                      built[c.group.name], c.restarts))
        for g in plan.added:
            self.workers.add(g.name, built[g.name])
            self.tg.create_task(self.workers.run(g), name=f"group {g.name}")
            self.monitors.start(g)
        self.follow(new)
        if self.guard is not None:
            self.guard.replace()

    def keep_old(self, g: Group) -> None:
        """Put `g` back in the running configuration (a change that could not be applied)."""
        hub = self.hub
        hub.shared.cluster = dataclasses.replace(hub.cluster, groups=tuple(
            g if x.name == g.name else x for x in hub.cluster.groups))
        hub.node.reloading.reconfigure(hub.shared.cluster, ())  # through its input, adding nothing


class _Replace:
    """A reload's change to a group, run by its worker between its other actions. A group
    running here restarts from the first changed resource; a stopped one simply takes the
    new agents. One whose old resources may still be held (a failed stop) keeps its old
    definition, so that a cleanup probes what is really there and a later reload applies
    the change."""

    def __init__(self, reload: Reload, old: Group, group: Group, index: int,
                 agents: list[Agent], restarts: bool) -> None:
        self.reload, self.old, self.group, self.index, self.agents = \
            reload, old, group, index, agents
        self.restarts = restarts

    async def __call__(self) -> bool:
        r, hub, workers = self.reload, self.reload.hub, self.reload.workers
        node, name = hub.node, self.group.name
        old = workers.agents[name]
        state = node.local[name]
        if state is GroupState.FAILED:
            log.error("reload: group %s failed to stop here: it keeps its old definition; "
                      "run `vigil resource cleanup %s`, then reload again", name, name)
            r.keep_old(self.old)
            r.monitors.start(self.old)
            return False
        if not self.restarts or state is not GroupState.RUNNING:
            workers.agents[name] = old[:self.index] + self.agents
            r.monitors.start(self.group)
            return False
        t0 = hub.clock()
        node.reloading.begin(name, GroupState.STARTING)
        hub.process()
        result, detail = await workers.recover(self.group, self.index, self.agents)
        if workers.agents[name] is old:  # the old resources did not stop: nothing replaced
            log.error("reload: group %s: the old resources did not stop; it keeps its old "
                      "definition (clean it up, then reload again)", name)
            r.keep_old(self.old)
            r.monitors.start(self.old)
        else:
            r.monitors.start(self.group)
        hub.log(node.finished(name, result, detail, (hub.clock() - t0) * 1000))
        hub.process()
        return False


class Retire:
    """A reload removed the group: its worker stops it if it runs here, then forgets it.
    While its stop has failed it stays known (and guarded) until cleaned up, when the
    cleanup queues a Retire again (services/control.py)."""

    def __init__(self, reload: Reload, group: Group) -> None:
        self.reload, self.group = reload, group

    async def __call__(self) -> bool:
        r, hub, workers = self.reload, self.reload.hub, self.reload.workers
        node, g = hub.node, self.group
        r.monitors.stop(g.name)
        state = node.local.get(g.name)
        if state is GroupState.RUNNING:
            t0 = hub.clock()
            node.reloading.begin(g.name, GroupState.STOPPING)
            hub.process()
            result, detail = await workers.stop(workers.whole(g.name))
            hub.log(node.finished(g.name, result, detail, (hub.clock() - t0) * 1000))
            state = result
        if state is GroupState.FAILED:
            log.error("reload: group %s was removed from the configuration but failed to "
                      "stop here: it stays guarded; run `vigil resource cleanup %s`", g.name,
                      g.name)
            hub.process()
            return False
        hub.retiring.pop(g.name, None)
        node.reloading.forget(g.name)
        workers.remove(g.name)
        log.info("reload: group %s removed", g.name)
        hub.process()
        return True
