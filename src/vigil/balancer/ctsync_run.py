"""conntrackd run by vigil (balancer/ctsync.py says what it is told): started with the
balancer, kept running (restarted 1 s after it dies, twice as long each time it dies young, up
to 30 s), told of each role change, stopped with the daemon.

A conntrackd that a crashed vigil left running still holds the lock: it is asked to quit
(`-k`, through its socket) before ours starts. Its messages go to conntrackd.log in its own
directory, never to vigil's log (nothing it says can flood ours); vigil logs when it starts,
dies, and when a role change's command fails, each at most once a minute per kind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vigil.balancer import ctsync
from vigil.log import LimitedLog
from vigil.resources import runner
from vigil.errors import AgentError
from vigil.model import Cluster

log = logging.getLogger(__name__)

BINARY = "conntrackd"
COMMAND_TIMEOUT = 10.0  # one command's bound (a commit of very many connections is slow)
COMMIT_WAIT = 2.0  # how long a takeover waits for the commit before its addresses move on
MAX_BACKOFF = 30.0
_Step = tuple[str, str, "asyncio.Future[bool] | None"]


def for_node(cluster: Cluster, me: str, directory: Path,
             interface: str | None = None) -> ConntrackSync | None:
    """The sync of node `me`, its files in `directory`, bound to the configured interface
    or else `interface` (the one holding its address: conntrackd's UDP channel needs one);
    None when not configured."""
    sync = cluster.conntrack_sync
    if sync is None or not cluster.virtual_servers:
        return None
    local = cluster.node(me).addresses[sync.link]
    peer = cluster.peers(me)[0].addresses[sync.link]
    paths = ctsync.Paths(directory)
    config = ctsync.render(local, peer, sync.port, sync.interface or interface,
                           {vs.protocol for vs in cluster.virtual_servers},
                           [a for n in cluster.nodes for a in n.addresses], paths)
    return ConntrackSync(config, paths)


class ConntrackSync:
    def __init__(self, config: str, paths: ctsync.Paths, prefix: Sequence[str] = (),
                 binary: str = BINARY) -> None:
        self.config, self.paths = config, paths
        self.prefix = tuple(prefix)  # tests: run it elsewhere (`ip netns exec NS`)
        self.binary = binary
        self.pid: int | None = None
        self.restarts = 0
        self.role = "backup"
        self.last_error: str | None = None
        self._log = LimitedLog(log, 1 / 60, 2)
        self._up = asyncio.Event()
        # The commands, in order, by one worker: a role change never waits for a hung
        # conntrackd longer than COMMIT_WAIT, and two changes never interleave.
        self._steps: asyncio.Queue[_Step] = asyncio.Queue()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._work(), name="conntrackd commands")
            await self._supervise()

    async def _work(self) -> None:
        while True:
            flag, what, done = await self._steps.get()
            ok = self._up.is_set() and await self._command(flag, what)
            if done is not None and not done.done():
                done.set_result(ok)

    def _queue(self, steps: Sequence[tuple[str, str]]) -> None:
        for flag, what in steps:
            self._steps.put_nowait((flag, what, None))

    async def _supervise(self) -> None:
        backoff = 1.0
        while True:
            t0 = time.monotonic()
            try:
                proc = await self._start()
            except OSError as e:
                self._say("start", f"conntrackd cannot start: {e.strerror or e}; again in "
                                   f"{backoff:g} s")
            else:
                try:
                    rc = await proc.wait()
                except asyncio.CancelledError:
                    await runner.stop(proc, [self.binary])
                    raise
                finally:
                    self.pid = None
                    self._up.clear()
                self.restarts += 1
                self.last_error = (f"conntrackd exited ({runner.exit_text(rc)}); see "
                                   f"{self.paths.directory}")
                self._say("exit", f"{self.last_error}; again in {backoff:g} s")
            if time.monotonic() - t0 > 60:
                backoff = 1.0
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _start(self) -> asyncio.subprocess.Process:
        self.paths.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.paths.config.write_text(self.config)
        if self.paths.lock.exists():  # a conntrackd left by a vigil that died
            await self._command("-k", "ask a leftover conntrackd to quit", quiet=True)
            await asyncio.sleep(0.2)
            self.paths.lock.unlink(missing_ok=True)
        self.paths.socket.unlink(missing_ok=True)
        with open(self.paths.directory / "conntrackd.log", "ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *self.prefix, self.binary, "-C", str(self.paths.config),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)
        self.pid = proc.pid
        end = time.monotonic() + 5.0
        while not self.paths.socket.exists() and proc.returncode is None:
            if time.monotonic() > end:
                break
            await asyncio.sleep(0.02)
        if self.paths.socket.exists():
            log.info("conntrackd started pid=%d config=%s", proc.pid, self.paths.config)
            self._up.set()
            if self.role == "active":  # restarted while active: our kernel is the truth
                self._queue(ctsync.RESUME_ACTIVE)
            else:
                self._queue(ctsync.BECOME_BACKUP)
        return proc

    async def become_active(self) -> None:
        """This director takes the services: the peer's connections go into our kernel
        before the caller moves the addresses, unless the commit takes over COMMIT_WAIT
        (the takeover goes on; the rest follows in the background)."""
        self.role = "active"
        committed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._steps.put_nowait((*ctsync.COMMIT, committed))
        self._queue([step for step in ctsync.BECOME_ACTIVE if step != ctsync.COMMIT])
        try:
            async with asyncio.timeout(COMMIT_WAIT):
                await asyncio.shield(committed)
        except TimeoutError:
            self._say("late", f"conntrackd's commit took over {COMMIT_WAIT:g} s: the "
                              f"takeover goes on, connections not yet committed may break")

    async def become_backup(self) -> None:
        """Another director has the services: ask it for everything (in the background)."""
        self.role = "backup"
        self._queue(ctsync.BECOME_BACKUP)

    async def _command(self, flag: str, what: str, quiet: bool = False) -> bool:
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                done = await runner.run([*self.prefix, self.binary, "-C",
                                         str(self.paths.config), flag])
        except (AgentError, TimeoutError) as e:
            problem = str(e) or f"no answer in {COMMAND_TIMEOUT:g} s"
        else:
            if done.ok:
                return True
            problem = done.last_stderr_line() or done.describe_rc()
        if not quiet:
            self.last_error = f"conntrackd {flag} ({what}) failed: {problem}"
            self._say(flag, self.last_error)
        return False

    def _say(self, key: str, message: str) -> None:
        self._log.log(key, logging.WARNING, "%s", message)

    def status(self) -> dict[str, Any]:
        return {"running": self.pid is not None and self._up.is_set(), "pid": self.pid,
                "role": self.role, "restarts": self.restarts, "last_error": self.last_error,
                "directory": str(self.paths.directory)}

