"""Notify hooks: call the user's programs on every event, once each, without waiting.

keepalived's notify_master/notify_backup and Heartbeat's resource scripts are what operators
hang their mail, DNS and load-balancer updates on; the requests keepalived gets most are
"a hook was missed" and "a slow hook held up a transition". So: `submit` only queues the
event (the daemon never waits for a hook); one worker task calls the programs for each
event in order (a hook sees events in the order they happened), each with the timeout,
after which its whole process group is killed and the next call goes on. A call that fails
or times out is logged and not retried: each event reaches each program exactly once.

The event arrives as environment variables and as one JSON object on stdin:
  VIGIL_EVENT (kind), VIGIL_SUBJECT, VIGIL_DETAIL, VIGIL_NODE, VIGIL_CLUSTER, VIGIL_SEQ,
  VIGIL_TIME, and by kind VIGIL_GROUP, VIGIL_PEER or VIGIL_LINK.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from pathlib import Path

from vigil.daemon.bus import Event
from vigil.errors import AgentError
from vigil.model import Notify
from vigil.resources import runner

log = logging.getLogger(__name__)

BACKLOG = 10_000  # events waiting for the hooks; beyond this the oldest are dropped, loudly
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def programs(n: Notify) -> list[Path]:
    """The programs to call, read afresh for each event: a script dropped into the directory
    takes effect at the next event. Like run-parts: executable regular files, in name order,
    no dotfiles or editor backups."""
    out = list(n.programs)
    if n.directory is not None:
        try:
            entries = sorted(n.directory.iterdir())
        except OSError as e:
            log.error("notify directory %s: %s", n.directory, e.strerror or e)
            entries = []
        out += [p for p in entries if p.is_file() and os.access(p, os.X_OK)
                and not p.name.startswith(".") and not p.name.endswith(("~", ".dpkg-old",
                                                                          ".dpkg-new"))]
    return out


def environment(ev: Event, cluster: str) -> dict[str, str]:
    env = {"PATH": PATH, "LANG": "C.UTF-8", "VIGIL_EVENT": ev.kind, "VIGIL_SUBJECT": ev.subject,
           "VIGIL_DETAIL": ev.detail, "VIGIL_NODE": ev.node, "VIGIL_CLUSTER": cluster,
           "VIGIL_SEQ": str(ev.seq), "VIGIL_TIME": f"{ev.time:.3f}"}
    if ev.kind.startswith("group_"):
        env["VIGIL_GROUP"] = ev.subject
    elif ev.kind.startswith(("node_", "fence")):
        env["VIGIL_PEER"] = ev.subject
    elif ev.kind.startswith("link_"):
        env["VIGIL_LINK"] = ev.subject
    return env


class Hooks:
    def __init__(self, notify: Notify, cluster: str) -> None:
        self.notify = notify
        self.cluster = cluster
        self.queue: deque[Event] = deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()  # nothing queued, no call running
        self.idle.set()
        self.calls = 0
        self.failures = 0
        self.dropped = 0

    def submit(self, ev: Event) -> None:
        """A bus listener: queue and return at once."""
        if len(self.queue) >= BACKLOG:
            lost = self.queue.popleft()
            self.dropped += 1
            log.error("notify hooks are %d events behind: event %d (%s %s) is dropped",
                      BACKLOG, lost.seq, lost.kind, lost.subject)
        self.queue.append(ev)
        self.idle.clear()
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                ev = self.queue.popleft()
                for prog in programs(self.notify):
                    await self.call(prog, ev)
            self.idle.set()

    async def drain(self, timeout: float) -> None:
        """At shutdown: let the hooks see the last events (the groups stopping), bounded."""
        try:
            async with asyncio.timeout(timeout):
                await self.idle.wait()
        except TimeoutError:
            log.warning("notify hooks: %d events not delivered at shutdown", len(self.queue))

    async def call(self, prog: Path, ev: Event) -> None:
        self.calls += 1
        data = json.dumps({**ev.as_dict(), "cluster": self.cluster}).encode() + b"\n"
        try:
            async with asyncio.timeout(self.notify.timeout):
                done = await runner.run([str(prog)], env=environment(ev, self.cluster),
                                        stdin=data, grace=0.0)
        except TimeoutError:
            self.failures += 1
            log.error("notify hook %s on event %d (%s %s) timed out after %g s: killed",
                      prog, ev.seq, ev.kind, ev.subject, self.notify.timeout)
            return
        except (AgentError, OSError, ValueError) as e:  # not runnable; no fd left; NUL in env
            self.failures += 1
            log.error("notify hook %s on event %d (%s %s): %s", prog, ev.seq, ev.kind,
                      ev.subject, e)
            return
        if not done.ok:
            self.failures += 1
            line = done.last_stderr_line()
            log.warning("notify hook %s on event %d (%s %s) failed: %s%s", prog, ev.seq,
                        ev.kind, ev.subject, done.describe_rc(), f": {line}" if line else "")
