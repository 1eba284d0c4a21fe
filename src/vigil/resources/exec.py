"""A service driven by three commands: start, stop and (optionally) status."""

from __future__ import annotations

from collections.abc import Sequence

from vigil.errors import AgentError
from vigil.model import ExecResource
from vigil.resources import runner
from vigil.resources.base import Agent
from vigil.resources.procs import Scope


class ExecAgent(Agent):
    """Runs `resource.start` / `resource.stop` / `resource.status` with `runner.run`.

    A non-zero exit of start or stop is an AgentError carrying the exit status and the last
    line of stderr. Stop commands must succeed when the service is already stopped (as LSB and
    OCF stop actions do): the agent runs them every time. All three run in the resource's
    scope (procs.Scope): after a stop that succeeded, what the start left running (a daemon
    it forked off, a child that ignores SIGTERM) is killed.
    """

    def __init__(self, resource: ExecResource) -> None:
        self.resource = resource
        self.name = resource.name
        self.timeout = resource.timeout
        self.procs = Scope.of(resource)
        self._started = False

    def probe_tells_absent(self) -> bool:
        return self.resource.status is not None

    async def start(self) -> None:
        self._started = False
        await self._run("start", self.resource.start)
        self._started = True

    async def stop(self) -> None:
        await self._run("stop", self.resource.stop)
        self._started = False
        await self.kill_leftovers()

    async def probe(self) -> bool:
        """With a `status` command: its exit status is 0. Any other status means stopped.

        Without one, there is nothing to ask: the answer is whether this agent's last start
        succeeded and no stop has succeeded since. That is only as good as the service (it may
        have died since), and after a daemon restart it says False.

        Either way, processes of the resource still running make it present
        (`present_or_left`): a crash may have left them.
        """
        return await self.present_or_left("probe", await self._status())

    async def monitor(self) -> bool:
        """The status command's answer (processes left of a dead service are logged)."""
        return await self.present_or_left("monitor", await self._status())

    async def _status(self) -> bool:
        if self.resource.status is None:
            return self._started
        done = await self._spawn("status", self.resource.status)
        return done.rc == 0

    async def _run(self, action: str, argv: Sequence[str]) -> runner.Completed:
        done = await self._spawn(action, argv)
        if done.rc != 0:
            detail = done.last_stderr_line()
            raise self.error(
                f"{action} failed ({done.describe_rc()})" + (f": {detail}" if detail else "")
            )
        return done

    async def _spawn(self, action: str, argv: Sequence[str]) -> runner.Completed:
        try:
            done = await runner.run(argv, scope=self.procs)
        except AgentError as e:
            raise self.error(f"{action}: {e}") from e
        self.log_output(action, done)
        return done
