"""Run one external program: argv only, no shell, no timeout of its own, always reaped.

`run()` takes no timeout: the caller wraps it in `asyncio.timeout()`. Cancellation (a caller's
timeout included) terminates the child's whole process group: SIGTERM, `grace` seconds, then
SIGKILL; the child is reaped before `CancelledError` is re-raised, even if the caller cancels
again while we wait.

Output goes to anonymous temporary files, not pipes. A start command that leaves a daemon
behind (`sh -c 'mydaemon &'`) hands our stdout to that daemon: with pipes, asyncio's
`Process.wait()` (3.11) only returns once every pipe is closed, so the start would hang until
the daemon exits, and closing our end early would kill the daemon with SIGPIPE on its next
write. With files the daemon writes into a file nobody reads, and we read the tail of each
file once the child itself has exited.

With a `scope` (procs.Scope: the resource the action belongs to), the child runs in that
resource's cgroup, entered before the program starts (or, without cgroups, carries the
resource's environment mark and has its session remembered when it leaves processes
behind): whatever it leaves running can be found and killed after the resource's stop.
A cancel still terminates only the child's own process group, not the whole scope: a
cancelled monitor must not kill the service it was checking. (The cgroup's way in is a
fixed `/bin/sh -c` script that execs the argv it is handed as "$@": no configured string is
ever parsed by a shell; see cgroup.enter_argv.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from vigil.errors import AgentError

if TYPE_CHECKING:
    from vigil.resources.procs import Scope

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 4096
"""Bytes kept of stdout and of stderr: the tail, where the error message usually is."""


@dataclass(frozen=True, slots=True)
class Completed:
    """A child that ran to its end."""

    argv: tuple[str, ...]
    rc: int  # exit status; -N when killed by signal N
    stdout: str  # the last OUTPUT_LIMIT bytes, decoded with replacement characters
    stderr: str  # likewise
    duration: float  # seconds from spawn to exit

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def describe_rc(self) -> str:
        """"rc=3" or "killed by SIGKILL", for messages."""
        if self.rc < 0:
            try:
                return f"killed by {signal.Signals(-self.rc).name}"
            except ValueError:
                return f"killed by signal {-self.rc}"
        return f"rc={self.rc}"

    def last_stderr_line(self) -> str:
        """The last non-blank line of stderr, or "" when there is none."""
        for line in reversed(self.stderr.splitlines()):
            if line.strip():
                return line.strip()
        return ""


async def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    grace: float = 2.0,
    stdin: bytes | None = None,
    scope: Scope | None = None,
) -> Completed:
    """Run `argv` to completion and return its exit status and output.

    stdin is /dev/null, or `stdin` (from a file, never a pipe that could fill); the child
    leads its own session and process group; `env` replaces the environment (None inherits
    the daemon's); `scope` is the resource whose processes it joins (see the module
    docstring). A program that cannot be executed raises `AgentError` naming it. Cancel to
    stop it early (see the module docstring).
    """
    args = tuple(argv)
    if not args:
        raise AgentError("cannot run an empty command")
    loop = asyncio.get_running_loop()
    spawn: tuple[str, ...] = args
    spawn_env = dict(env) if env is not None else None
    if scope is not None:
        try:
            spawn, spawn_env = scope.command(args, env)
        except OSError as e:  # the program cannot run: as the spawn below would say
            raise AgentError(f"cannot run {args[0]}: {e.strerror or e}") from e
    with _output_file() as out, _output_file() as err, _output_file() as inp:
        if stdin:
            inp.write(stdin)
            inp.seek(0)
        started = loop.time()
        try:
            proc = await asyncio.create_subprocess_exec(
                *spawn,
                stdin=inp if stdin else asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=spawn_env,
                start_new_session=True,
            )
        except OSError as e:  # ENOENT, EACCES, ENOEXEC, ENOTDIR...
            reason = e.strerror or str(e)
            raise AgentError(f"cannot run {args[0]}: {reason}") from e
        log.debug("spawned pid=%d argv=%s", proc.pid, args)
        try:
            rc = await proc.wait()
        except asyncio.CancelledError:
            await _reap_despite_cancellation(proc, args, grace)
            if scope is not None:
                scope.exited(proc.pid)
            raise
        if scope is not None:
            scope.exited(proc.pid)
        duration = loop.time() - started
        return Completed(args, rc, _tail(out), _tail(err), duration)


def _output_file() -> IO[bytes]:
    # Anonymous (O_TMPFILE where supported): nothing to clean up, nothing visible.
    return tempfile.TemporaryFile(prefix="vigil-run-")


def _tail(f: IO[bytes]) -> str:
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - OUTPUT_LIMIT))
    return f.read(OUTPUT_LIMIT).decode("utf-8", errors="replace")


def exit_text(rc: int) -> str:
    """A program's end as a kept-running program's log says it: "status 1", "signal 9"."""
    return f"status {rc}" if rc >= 0 else f"signal {-rc}"


async def stop(proc: asyncio.subprocess.Process, argv: Sequence[str], grace: float = 2.0) -> None:
    """Stop a child started with start_new_session (a program kept running: respawn,
    conntrackd): SIGTERM to its process group, SIGKILL after `grace`, reaped, even when the
    caller is cancelled meanwhile."""
    await _reap_despite_cancellation(proc, tuple(argv), grace)


async def _reap_despite_cancellation(
    proc: asyncio.subprocess.Process, args: tuple[str, ...], grace: float
) -> None:
    """Terminate and reap `proc`; further cancellations wait for that to finish.

    The cleanup runs in its own task so that a second cancel() of ours cannot interrupt it; it
    is awaited to the end, so it is not left orphaned. Every cancellation received meanwhile
    stays counted on our task (Task.cancelling()), and the caller re-raises CancelledError.
    """
    cleanup = asyncio.ensure_future(_terminate(proc, args, grace))
    while True:
        try:
            await asyncio.shield(cleanup)
            return
        except asyncio.CancelledError:
            if cleanup.done():
                return
            # cancelled again while reaping: keep reaping; the caller re-raises afterwards


async def _terminate(proc: asyncio.subprocess.Process, args: tuple[str, ...], grace: float) -> None:
    _signal_group(proc, signal.SIGTERM)
    try:
        async with asyncio.timeout(grace):
            await proc.wait()
        return
    except TimeoutError:
        pass
    log.warning("killing pid=%d with SIGKILL after grace=%gs argv=%s", proc.pid, grace, args)
    _signal_group(proc, signal.SIGKILL)
    await proc.wait()


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    if proc.returncode is not None:
        return  # already reaped: its pid may belong to someone else by now
    try:
        # start_new_session made the child its own process group leader: pgid == pid.
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
