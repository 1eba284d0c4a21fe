"""Fence agents: make sure a node declared dead is powered off (STONITH).

- fence_* programs of Debian's fence-agents speak the stdin protocol of the Red Hat fence
  agents (FenceAgentAPI): one `key=value` line per option (`action=off|reboot|status|
  monitor`, the device's own options such as `ip`, `username`, `plug`), then end of input.
  Exit status 0 is success. The program is found on PATH (/usr/sbin) unless a path is given.
- external: the user's program, called as `command... ACTION NODE`, exit status 0 = success.
- manual: nothing to run; an operator confirms with `vigil fence confirm NODE`.

`fence()` raises AgentError on failure. Its timeout belongs to the caller (asyncio.timeout),
which cancels the run: the agent process is then killed and reaped (runner.run).
"""

from __future__ import annotations

import shutil

from vigil.errors import AgentError
from vigil.model import Fencing
from vigil.resources.runner import run


def argv_and_input(f: Fencing, node: str, action: str) -> tuple[list[str], bytes]:
    if f.agent == "external":
        return [*f.command, action, node], b""
    program = f.agent if f.agent.startswith("/") else (shutil.which(f.agent) or
                                                      shutil.which(f.agent, path="/usr/sbin"))
    if program is None:
        raise AgentError(f"fence agent {f.agent} not found (is fence-agents installed?)")
    lines = [f"action={action}", *(f"{k}={v}" for k, v in f.params_for(node))]
    return [program], ("\n".join(lines) + "\n").encode()


async def fence(f: Fencing, node: str) -> str:
    """Power `node` off (or reboot it) with the configured agent; return its last words."""
    assert f.agent != "manual", "manual fencing is confirmed by an operator, not run"
    argv, stdin = argv_and_input(f, node, f.action)
    done = await run(argv, stdin=stdin)
    tail = (done.stdout.strip().splitlines() or done.stderr.strip().splitlines() or [""])[-1]
    if done.rc != 0:
        raise AgentError(f"fence agent {f.agent} {f.action} {node}: {done.describe_rc()}"
                         + (f": {done.last_stderr_line()}" if done.last_stderr_line() else ""))
    return tail


async def monitor(f: Fencing, node: str) -> str:
    """Ask a fence_* agent whether its device answers (`action=monitor`, as Pacemaker does
    for its stonith resources): fencing that would fail should be known before it is
    needed. Raises AgentError when the device does not answer."""
    assert f.agent not in ("manual", "external", "disk")
    argv, stdin = argv_and_input(f, node, "monitor")
    done = await run(argv, stdin=stdin)
    if done.rc != 0:
        raise AgentError(f"fence agent {f.agent} monitor: {done.describe_rc()}"
                         + (f": {done.last_stderr_line()}" if done.last_stderr_line() else ""))
    return (done.stdout.strip().splitlines() or [""])[-1]
