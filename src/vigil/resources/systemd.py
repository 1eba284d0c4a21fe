"""systemd units through systemctl: `start`, `stop` and `is-active`.

Nothing works without systemd as the init system. Whether it is, is asked the way
sd_booted(3) does, by /run/systemd/system being a directory; when it is not, every action
raises an AgentError naming what PID 1 is instead, and healthy() says False (without a
message: the engine asks that every keepalive).

The unit's state is the word `systemctl is-active UNIT` prints (rather than `--quiet` and a
second `is-failed` call: one process, and the transitional states are told apart):

- active, reloading, refreshing: running (True);
- activating, deactivating: processes exist, so present (True) for probe and monitor alike;
  the next monitor sees where the transition ended;
- inactive: stopped (False);
- failed: monitor raises AgentError (systemd gave up on it: a failure, not a clean stop);
  probe says False (systemd has killed what it ran; there is nothing to stop);
- anything else (no output, bus errors): AgentError.

`systemctl start` and `stop` wait for their job. stop of an inactive unit exits 0; stop of a
unit systemd does not know (exit 5, "not loaded") is a success too, with a warning: nothing
of it can be running. The unit name follows "--", so it is never read as an option.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from vigil.errors import AgentError
from vigil.model import SystemdResource
from vigil.resources import runner
from vigil.resources.base import Agent

log = logging.getLogger(__name__)

NOT_LOADED = 5  # systemctl's (LSB) "program is not installed": the unit does not exist
STATES = {"active": True, "reloading": True, "refreshing": True,  # is-active -> running?
          "activating": True, "deactivating": True, "inactive": False}


def is_booted() -> bool:
    """Whether systemd is the init system (sd_booted(3): /run/systemd/system is a dir)."""
    return Path("/run/systemd/system").is_dir()


def pid1_name() -> str:
    """The command name of PID 1, for messages."""
    try:
        return Path("/proc/1/comm").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


class SystemdAgent(Agent):
    """One systemd unit. `systemctl` and `booted` are test seams: the program to run (a fake
    on a test's PATH) and the systemd check (default: `is_booted`)."""

    def __init__(self, resource: SystemdResource, *, systemctl: str = "systemctl",
                 booted: Callable[[], bool] | None = None) -> None:
        self.resource = resource
        self.name = resource.name
        self.timeout = resource.timeout
        self.systemctl = systemctl
        self._booted = booted if booted is not None else is_booted

    async def start(self) -> None:
        done = await self._ctl("start")
        if done.rc != 0:
            raise self.error(f"start failed ({done.describe_rc()})" + _detail(done))

    async def stop(self) -> None:
        done = await self._ctl("stop")
        if done.rc == NOT_LOADED:
            log.warning("%s stop: unit not loaded; nothing of it can be running; stopped%s",
                        self.name, _detail(done))
        elif done.rc != 0:
            raise self.error(f"stop failed ({done.describe_rc()})" + _detail(done))

    async def probe(self) -> bool:
        return await self._active("probe")

    async def monitor(self) -> bool:
        return await self._active("monitor")

    async def healthy(self) -> bool:
        return self._booted()

    async def _active(self, action: str) -> bool:
        done = await self._ctl("is-active")
        state = done.stdout.strip()
        if state in STATES:
            return STATES[state]
        if state == "failed":
            if action == "probe":
                return False
            raise self.error("unit failed (systemctl is-active: failed)")
        raise self.error(f"{action}: state unknown ({done.describe_rc()}, "
                         f"said {state!r})" + _detail(done))

    async def _ctl(self, command: str) -> runner.Completed:
        if not self._booted():
            raise self.error(f"systemd is not running on this host (PID 1 is {pid1_name()}): "
                             "systemd resources need it")
        try:
            done = await runner.run([self.systemctl, command, "--", self.resource.unit])
        except AgentError as e:
            raise self.error(f"{command}: {e}") from e
        self.log_output(command, done)
        return done


def _detail(done: runner.Completed) -> str:
    """systemctl's first line of complaint (its last is usually "See 'systemctl status'")."""
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return f": {lines[0]}" if lines else ""
