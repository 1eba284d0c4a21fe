"""The contract every resource agent keeps.

An agent owns one configured resource (`model.Resource`) on this node. Its actions are
coroutines with no timeout of their own: the caller (daemon/services/groups.py) wraps each one in
`asyncio.timeout(agent.timeout)` and treats the TimeoutError like a failure. Cancellation
leaves nothing running (a cancelled command is killed and reaped).

- `start()` of a running resource and `stop()` of a stopped one succeed: both are idempotent.
- Failures raise `errors.AgentError` with a message that begins with the resource's name.
- `probe()` answers "is it present/running here?"; `healthy()` answers "could this node run it
  now?" (for an address: is its interface up with carrier?).
- Agents that run programs of their own (exec, OCF, LSB, Heartbeat scripts) keep them in a
  `procs.Scope` (`procs`): a successful `stop()` ends by killing whatever the resource left
  running (`kill_leftovers`), so the guard, which calls the same stop(), does too; a probe
  that finds the resource stopped but processes of it still there says present
  (`present_or_left`), so that the daemon stops it, which kills them; `processes()` lists
  them, for status.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from typing import TYPE_CHECKING

from vigil.errors import AgentError

if TYPE_CHECKING:
    from vigil.resources.procs import Proc, Scope
    from vigil.resources.runner import Completed

log = logging.getLogger(__name__)
# Checks that run every few seconds: their chatter is debug, unless they fail.
_QUIET = frozenset({"monitor", "probe", "status", "is-active", "validate-all", "meta-data"})


class Agent(abc.ABC):
    """One resource on this node. Subclasses set `name` (= resource.name) and `timeout`."""

    name: str
    timeout: float  # seconds the caller should allow each action (the resource's `timeout`)
    procs: Scope | None = None  # where its programs run; None: it runs none of its own

    @abc.abstractmethod
    async def start(self) -> None:
        """Bring the resource up here; succeed if it already is. AgentError on failure."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Take the resource down here; succeed if it already is. AgentError on failure."""

    @abc.abstractmethod
    async def probe(self) -> bool:
        """True when the resource is present/running on this node."""

    def probe_tells_absent(self) -> bool:
        """Whether a False probe means the resource is not here (an exec resource without
        a status command cannot tell, after a restart of the daemon)."""
        return True

    async def healthy(self) -> bool:
        """Whether this node can run the resource now. By default it always can."""
        return True

    def healthy_now(self) -> bool | None:
        """`healthy()`'s answer when it needs no IO (the health pass then takes no task
        switch and no timeout, every keepalive); None when only `healthy()` can tell."""
        return True if type(self).healthy is Agent.healthy else None

    async def monitor(self) -> bool:
        """The periodic check of a running resource: True while it runs, False when it is not
        running (it died: restart it), AgentError when it failed in a way a restart may not
        cure or the check itself failed. By default the probe."""
        return await self.probe()

    async def changed(self) -> None:
        """Returns when the agent learns, without a check, that its resource may have
        changed (a process it watches exited): the monitor then checks at once instead of
        at its next interval. By default never; an agent returns at most once per change,
        or the monitor would check in a loop."""
        await asyncio.get_running_loop().create_future()

    def idle(self) -> bool:
        """True while the agent has nothing to do here (a balancer with no virtual server
        for its group): its actions still run, but are neither logged nor counted."""
        return False

    async def prepare(self) -> None:
        """Learn what the agent needs before its first action (OCF: its meta-data)."""

    def timeout_for(self, action: str) -> float:
        """Seconds the caller should allow `action` ("start", "stop", "monitor", "probe").
        By default the resource's one `timeout`; OCF agents read theirs from meta-data."""
        return self.timeout

    async def processes(self) -> tuple[Proc, ...]:
        """What runs in this resource's scope on this node now: while the resource runs, its
        service; once it is stopped, or after a failed stop, strays an operator should see.
        () for agents that start no processes."""
        return await self.procs.find() if self.procs is not None else ()

    async def kill_leftovers(self) -> None:
        """The end of a successful stop: kill what the resource left running (procs.Scope.clean:
        SIGTERM, a grace, SIGKILL; each process logged). Never after a failed stop."""
        if self.procs is not None:
            await self.procs.clean()

    async def present_or_left(self, action: str, running: bool) -> bool:
        """A probe's or monitor's answer, checked against what is left in the scope.

        When the agent says stopped but processes of the resource still run (a crash left
        them, a stop outside vigil, a service whose main process died): a probe says present
        (True), with a warning naming them, so that the daemon runs stop, which kills them,
        before the resource starts anywhere; a monitor says stopped as the agent did (the
        restart's stop kills them) and names them."""
        if running or self.procs is None:
            return running
        left = await self.procs.find()
        if not left:
            return False
        names = ", ".join(str(p) for p in left[:16]) + (" ..." if len(left) > 16 else "")
        if action == "probe":
            log.warning("%s probe: stopped, but %d of its processes still run (%s); present "
                        "until stopped", self.name, len(left), names)
            return True
        log.warning("%s %s: stopped, but %d of its processes still run (%s); its stop will "
                    "kill them", self.name, action, len(left), names)
        return False

    def log_output(self, action: str, done: "Completed") -> None:
        """Keep the agent's own stderr in the log, each line under the resource's name:
        start and stop at info, checks at debug, and anything that failed as a warning
        (for checks, 3 and 7 are the "not running" answers, not failures)."""
        quiet = action in _QUIET
        fine = done.rc == 0 or (quiet and done.rc in (3, 7))
        level = logging.WARNING if not fine else logging.DEBUG if quiet else logging.INFO
        if not log.isEnabledFor(level):
            return
        for line in done.stderr.splitlines():
            if line.strip():
                log.log(level, "%s: %s", self.name, line.rstrip())

    def error(self, message: str) -> AgentError:
        """An AgentError whose message names this resource."""
        return AgentError(f"{self.name}: {message}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
