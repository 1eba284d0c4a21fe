"""LSB init scripts: `DIRECTORY/SCRIPT start|stop|status`, judged by LSB exit codes.

`ScriptAgent` holds what init scripts and Heartbeat's resource.d scripts share (heartbeat.py
builds on it): finding the script, running it, and what a missing script means.

- A script name is a plain file name: one with '/' or '..' is refused when the agent is built.
- A script that exists but is not an executable file fails every action (the service it
  started may be running: nothing can be said about it).
- A script that does not exist cannot have started anything on this node, the convention of
  OCF agents whose program is not installed: probe() says False and stop() succeeds (with a
  warning), while start() and monitor() fail, and healthy() says this node cannot run it.
  (Unless processes of the resource still run: see below.)
- Every run of the script is in the resource's scope (procs.Scope). A stop that succeeded
  ends by killing what is left of it; a probe that finds processes of it still running says
  present (base.Agent.present_or_left).

LSB status exit codes (LSB 3.1, "Init Script Actions"): 0 running, 1 dead but pid file exists,
2 dead but lock file exists, 3 not running, 4 unknown. 1 and 2 mean the service died without
cleaning up. monitor() reports that as a failure (AgentError), not as a plain stop; probe()
reports it as present, so the engine runs stop (which cleans up) before the service is
started anywhere else. start of a running service and stop of a stopped one must exit 0, as
LSB requires: any other exit status of start or stop is an AgentError.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from vigil.errors import AgentError
from vigil.model import LsbResource
from vigil.resources import runner
from vigil.resources.base import Agent
from vigil.resources.procs import Scope

log = logging.getLogger(__name__)


def check_script_name(script: str) -> str | None:
    """Why `script` cannot name a script inside a directory, or None when it can."""
    if not script or script == "." or "/" in script or ".." in script or "\0" in script:
        return f"script name {script!r} must be a plain file name (no '/' or '..')"
    return None


class ScriptAgent(Agent):
    """A script looked up in `directories` (the first that holds it) and run with `runner`.

    Subclasses say how the script is called (`argv`) and what its status means (`running`).
    """

    def __init__(self, name: str, script: str, directories: Sequence[Path],
                 timeout: float, procs: Scope | None = None) -> None:
        self.name = name
        self.timeout = timeout
        self.procs = procs
        problem = check_script_name(script)
        if problem is not None:
            raise self.error(problem)
        self.script = script
        self.directories = tuple(directories)

    def argv(self, path: Path, action: str) -> list[str]:
        """The command line of `action` ("start", "stop", "status")."""
        return [str(path), action]

    @abc.abstractmethod
    def running(self, status: runner.Completed, action: str) -> bool:
        """What a status run says: True running, False stopped; AgentError otherwise.
        `action` is "probe" or "monitor", which may judge a dead service differently."""

    def locate(self) -> Path | None:
        """The script, or None when no directory holds it. AgentError when it is there but
        cannot be run."""
        for directory in self.directories:
            path = directory / self.script
            if os.path.lexists(path):
                if not (path.is_file() and os.access(path, os.X_OK)):
                    raise self.error(f"script {path} is not an executable file")
                return path
        return None

    def missing(self) -> str:
        places = ", ".join(str(d) for d in self.directories)
        return f"script {self.script} not found in {places}"

    async def start(self) -> None:
        await self._checked("start", self._require("start"))

    async def stop(self) -> None:
        path = self.locate()
        if path is None:
            log.warning("%s stop: %s: nothing it started can be running; stopped",
                        self.name, self.missing())
        else:
            await self._checked("stop", path)
        await self.kill_leftovers()

    async def probe(self) -> bool:
        path = self.locate()
        running = path is not None and self.running(await self._run("status", path), "probe")
        return await self.present_or_left("probe", running)

    async def monitor(self) -> bool:
        path = self._require("monitor")
        running = self.running(await self._run("status", path), "monitor")
        return await self.present_or_left("monitor", running)

    async def healthy(self) -> bool:
        """Whether the script is installed here and executable (a stat, no process)."""
        try:
            return self.locate() is not None
        except AgentError:
            return False

    def _require(self, action: str) -> Path:
        path = self.locate()
        if path is None:
            raise self.error(f"cannot {action}: {self.missing()}")
        return path

    async def _checked(self, action: str, path: Path) -> None:
        done = await self._run(action, path)
        if done.rc != 0:
            raise self.error(f"{action} failed ({done.describe_rc()})" + _detail(done))

    async def _run(self, action: str, path: Path) -> runner.Completed:
        try:
            done = await runner.run(self.argv(path, action), scope=self.procs)
        except AgentError as e:
            raise self.error(f"{action}: {e}") from e
        self.log_output(action, done)
        return done


def _detail(done: runner.Completed) -> str:
    line = done.last_stderr_line()
    return f": {line}" if line else ""


class LsbAgent(ScriptAgent):
    """`resource.directory/resource.script start|stop|status` (see the module docstring)."""

    def __init__(self, resource: LsbResource) -> None:
        super().__init__(resource.name, resource.script, (resource.directory,),
                         resource.timeout, Scope.of(resource))
        self.resource = resource

    def missing(self) -> str:
        return f"script {self.directories[0] / self.script} does not exist"

    def running(self, status: runner.Completed, action: str) -> bool:
        match status.rc:
            case 0:
                return True
            case 3:
                return False
            case 1 | 2:
                what = "pid" if status.rc == 1 else "lock"
                if action == "probe":
                    log.warning("%s probe: dead but its %s file exists (status rc=%d); "
                                "present until stopped", self.name, what, status.rc)
                    return True
                raise self.error(f"dead but its {what} file exists (status rc={status.rc})")
        raise self.error(f"status unknown ({status.describe_rc()})" + _detail(status))
