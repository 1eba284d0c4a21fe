"""Heartbeat's resource.d scripts: `SCRIPT ARG1 ARG2 ... start|stop|status`.

A haresources entry such as `IPaddr::10.0.0.100/24/eth0` names the script (IPaddr) and its
arguments, separated by `::`; the arguments come first on the command line and the action
last. The script is looked up in the resource's `directories` in order (/etc/ha.d/resource.d,
then /etc/init.d); the first directory that holds it wins. Lookup, refusal of bad names and
the meaning of a missing script are `lsb.ScriptAgent`'s.

Status: Heartbeat's own scripts print "running" (or "OK") and "stopped", and some exit 0
either way, so the output decides. A status that exits 3, or prints "stopped" or
"not running", means stopped (False); one that exits 0 and prints "running" or the word "OK"
means running (True); anything else is an AgentError. probe() and monitor() read it alike.
"""

from __future__ import annotations

import re
from pathlib import Path

from vigil.model import HeartbeatResource
from vigil.resources import runner
from vigil.resources.lsb import ScriptAgent
from vigil.resources.procs import Scope

_STOPPED = re.compile(r"stopped|not running", re.IGNORECASE)
_RUNNING = re.compile(r"running|\bOK\b", re.IGNORECASE)


def parse_haresources_spec(text: str) -> tuple[str, tuple[str, ...]]:
    """Split a haresources resource, `Filesystem::/dev/sdb5::/webdata::ext3`, into the script
    and its arguments: ("Filesystem", ("/dev/sdb5", "/webdata", "ext3")). ValueError when the
    script name or an argument is empty."""
    script, *args = [part.strip() for part in text.strip().split("::")]
    if not script:
        raise ValueError(f"{text!r}: no script name before '::'")
    if any(not a for a in args):
        raise ValueError(f"{text!r}: empty argument (a stray '::'?)")
    return script, tuple(args)


class HeartbeatAgent(ScriptAgent):
    """`SCRIPT ARGS... ACTION` for a `HeartbeatResource` (see the module docstring)."""

    def __init__(self, resource: HeartbeatResource) -> None:
        super().__init__(resource.name, resource.script, resource.directories,
                         resource.timeout, Scope.of(resource))
        self.resource = resource

    def argv(self, path: Path, action: str) -> list[str]:
        return [str(path), *self.resource.args, action]

    def running(self, status: runner.Completed, action: str) -> bool:
        if status.rc == 3 or _STOPPED.search(status.stdout):
            return False
        if status.rc == 0 and _RUNNING.search(status.stdout):
            return True
        said = status.stdout.strip().splitlines()[-1:] or [status.last_stderr_line()]
        raise self.error(f"status unclear ({status.describe_rc()}, said {said[0]!r})")
