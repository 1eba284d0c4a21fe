"""The group workers: one task per group runs its actions one at a time, in order.

Tasks: `group <name>` per group (`run`). Each takes what the hub's step submitted (Start,
Stop, Recover, Probe) and what a reload queued (a `Job`), cancels the group's monitor checks
first (their agents are killed, so a monitor never runs beside a start or stop, nor delays
one), runs the agents with their timeouts, and reports back to the node (`finished`,
`probed_addresses`). Consecutive addresses start and stop together (`batches`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Protocol, Union

from vigil.core.lookout import Answer, Result, Unprobed
from vigil.daemon.hub import Hub
from vigil.model import Group
from vigil.policy import Action, Probe, Recover, Start, Stop
from vigil.resources.base import Agent
from vigil.resources.ip import IpAgent
from vigil.wire.messages import GroupState

log = logging.getLogger(__name__)


class Job(Protocol):
    """Work a reload queues for a group's worker, run between its other actions."""

    async def __call__(self) -> bool: ...  # True: the group is gone, the worker ends


Work = Union[Action, Job]


class GroupWorkers:
    def __init__(self, hub: Hub, agents: dict[str, list[Agent]],
                 preludes: Callable[[str], list[Agent]] = lambda group: []) -> None:
        self.hub = hub
        self.agents = agents  # the group's configured resources, in order
        # Agents that start before a group's resources and stop after them, outside the
        # policy's resource numbers (the balancer's rules: balancer/agent.py).
        self.make_preludes = preludes
        self.preludes = {g: preludes(g) for g in agents}
        self.pending: dict[str, list[Work]] = {g: [] for g in agents}
        self.kicks = {g: asyncio.Event() for g in agents}
        # Monitor checks in flight per group (services/monitors.py adds them): an action
        # cancels them first.
        self.checks: dict[str, set[asyncio.Task[tuple[str, str]]]] = {g: set() for g in agents}

    # --- the hub's outlet --------------------------------------------------------------------

    def submit(self, action: Action) -> None:
        self.queue(action.group, action)

    def queue(self, group: str, work: Work) -> None:
        self.pending[group].append(work)
        self.kicks[group].set()

    def busy(self) -> bool:
        return any(self.pending.values())

    def whole(self, group: str) -> list[Agent]:
        """Everything the group starts, in order: its preludes, then its resources."""
        return self.preludes[group] + self.agents[group]

    def add(self, group: str, agents: list[Agent]) -> None:
        """A group added by a reload: its queue; its task is `run`, started by the caller."""
        self.agents[group] = agents
        self.preludes[group] = self.make_preludes(group)
        self.pending[group], self.kicks[group], self.checks[group] = [], asyncio.Event(), set()

    def remove(self, group: str) -> None:
        self.agents.pop(group, None)
        self.preludes.pop(group, None)
        self.pending.pop(group, None)
        self.kicks.pop(group, None)
        self.checks.pop(group, None)

    # --- the task ----------------------------------------------------------------------------

    async def run(self, group: Group) -> None:
        node = self.hub.node
        kick = self.kicks[group.name]
        while True:
            await kick.wait()
            kick.clear()
            while self.pending[group.name]:
                act = self.pending[group.name].pop(0)
                t0 = self.hub.clock()
                checks = self.checks[group.name]
                for check in checks:
                    check.cancel()
                if checks:
                    await asyncio.wait(checks)
                if isinstance(act, Probe):
                    answers = await self.look(group)
                    self.hub.log(node.side.probed_addresses(group.name, answers, self.hub.clock()))
                    self.hub.process()
                    continue
                if isinstance(act, Start):
                    result, detail = await self.start(group)
                elif isinstance(act, Recover):
                    result, detail = await self.recover(group, act.index)
                elif isinstance(act, Stop):
                    result, detail = await self.stop(self.whole(group.name))
                else:
                    if await act():
                        return  # the group is forgotten: this worker's job is over
                    continue
                ms = (self.hub.clock() - t0) * 1000
                self.hub.log(node.finished(group.name, result, detail, ms))
                self.hub.process()

    # --- agents ------------------------------------------------------------------------------

    async def recover(self, group: Group, index: int,
                      new: list[Agent] | None = None) -> tuple[GroupState, str]:
        """Restart resource `index` and the ones after it, as Pacemaker restarts a failed
        resource and what depends on it. If that fails the whole group (its preludes too)
        is stopped. With `new` (a reload), the stopped agents are replaced by `new` before
        the starts; when the stop fails, nothing is replaced."""
        agents = self.agents[group.name]
        result, detail = await self.stop(agents[index:])
        if result is GroupState.FAILED:
            return result, detail
        if new is not None:
            agents = self.agents[group.name] = agents[:index] + new
        for agent in agents[index:]:
            error = await self.act(agent, "start")
            if error is not None:
                result, _ = await self.stop(self.whole(group.name))
                return (GroupState.STOPPED if result is GroupState.STOPPED
                        else GroupState.FAILED), error
        return GroupState.RUNNING, ""

    async def start(self, group: Group) -> tuple[GroupState, str]:
        agents = self.whole(group.name)
        done = 0
        for batch in batches(agents):
            errors = [e for e in await asyncio.gather(*(self.act(a, "start") for a in batch))
                      if e is not None]
            done += len(batch)
            if errors:
                # Undo in reverse, the failed ones included (they may be half-started).
                result, _ = await self.stop(agents[:done])
                return (GroupState.STOPPED if result is GroupState.STOPPED
                        else GroupState.FAILED), "; ".join(errors)
        return GroupState.RUNNING, ""

    async def stop(self, agents: list[Agent]) -> tuple[GroupState, str]:
        errors = []
        for batch in reversed(batches(agents)):
            # keep stopping the rest after a failure: release as much as we can
            errors += [e for e in await asyncio.gather(*(self.act(a, "stop") for a in batch))
                       if e is not None]
        return (GroupState.FAILED, "; ".join(errors)) if errors else (GroupState.STOPPED, "")

    async def act(self, agent: Agent, action: str) -> str | None:
        """Run one agent action with its timeout; log one line; return an error or None."""
        t0 = self.hub.clock()
        error: str | None
        timeout = agent.timeout_for(action)
        try:
            async with asyncio.timeout(timeout):
                await getattr(agent, action)()
        except TimeoutError:
            error = f"timed out after {timeout:g} s"
        except Exception as e:  # an agent failure must never take the daemon down
            error = str(e) or type(e).__name__
        else:
            error = None
        ms = (self.hub.clock() - t0) * 1000
        if error is None and agent.idle():
            return None
        self.hub.metrics.action(agent.name, action, error is None, ms / 1000)
        if error is None:
            log.info("%s %s: ok in %.0f ms", agent.name, action, ms)
        else:
            log.error("%s %s: failed in %.0f ms: %s", agent.name, action, ms, error)
        return error

    async def look(self, group: Group) -> list[Result]:
        """Look before taking (core/lookout.py): probe each of the group's addresses at
        once, `address_probe` long; the ones another host answers for."""
        ips = [a for a in self.agents[group.name] if isinstance(a, IpAgent)]
        t0 = self.hub.clock()
        found = await asyncio.gather(*(a.answered(self.hub.cluster.address_probe)
                                       for a in ips), return_exceptions=True)
        answers: list[Result] = []
        for a, got in zip(ips, found):
            ip = str(a.resource.address.ip)
            if isinstance(got, BaseException):  # never silence: the group waits
                answers.append(Unprobed(ip, str(got).removeprefix(f"{a.name}: ")))
            elif got is not None:
                answers.append(Answer(ip, got))
        ms = (self.hub.clock() - t0) * 1000
        self.hub.metrics.probe(ms / 1000, bool(answers))
        if not answers:
            log.info("group %s: %s free (nobody answered in %.1f ms)", group.name,
                     ", ".join(str(a.resource.address.ip) for a in ips) or "no address", ms)
        return answers

    async def probe(self, group: Group) -> GroupState:
        """Reconcile: what of this group is already here (left by a crash, or by a guard)?"""
        return (await self.probe_parts(group))[0]

    async def probe_parts(self, group: Group) -> tuple[GroupState, int | None]:
        """`probe`, and the first of its resources found absent when only part of the group
        is here (see `probe`)."""
        return await probe(group, self.preludes[group.name], self.agents[group.name])


async def probe(group: Group, preludes: list[Agent],
                agents: list[Agent]) -> tuple[GroupState, int | None]:
    """What of `group` is here: RUNNING when any of its preludes or resources is, and then,
    when some resource is not, the index of the first such (a crash between two starts, a
    host reset that left a pid file): the group is restarted in place from it, as Pacemaker
    starts what its probes found stopped, rather than run without it until its monitor
    notices. A resource whose probe cannot tell (an exec without status) counts as here."""
    found = await _present(group, preludes + agents)
    if not any(found):
        return GroupState.STOPPED, None
    mine = found[len(preludes):]
    missing = next((i for i, (a, here) in enumerate(zip(agents, mine))
                    if not here and a.probe_tells_absent()), None)
    return GroupState.RUNNING, missing


async def _present(group: Group, agents: list[Agent]) -> list[bool]:
    present = []
    for agent in agents:
        try:
            async with asyncio.timeout(agent.timeout_for("probe")):
                present.append(await agent.probe())
        except Exception as e:
            log.warning("%s probe failed: %s; treating it as present", agent.name, e)
            present.append(True)
    if any(present):
        log.warning("group %s: found %s already present at start", group.name,
                    ", ".join(a.name for a, p_ in zip(agents, present) if p_))
    return present


def batches(agents: list[Agent]) -> list[list[Agent]]:
    """The group's agents in order, consecutive addresses together: addresses do not depend
    on one another, so a group of 64 of them moves in the time of a few, not of 64 (each
    is a netlink request and an ARP burst). Everything else stays one at a time, in order."""
    out: list[list[Agent]] = []
    for a in agents:
        if out and isinstance(a, IpAgent) and isinstance(out[-1][0], IpAgent):
            out[-1].append(a)
        else:
            out.append([a])
    return out
