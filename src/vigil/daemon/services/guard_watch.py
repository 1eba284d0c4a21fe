"""Watching the guard process (daemon/guard.py): its news, and a new guard when it dies.

Tasks: `guard` (`run`). After a stall the guard may have stopped groups: they are probed,
never assumed. A goodbye it said for this life moves the node to a new generation. A guard
that died is replaced at once (retried every second while that fails); one a reload replaced
(`replace`) is let go.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Callable

from vigil.daemon import guard as guard_mod
from vigil.daemon.hub import Hub
from vigil.daemon.services.groups import GroupWorkers
from vigil.errors import VigilError
from vigil.model import Cluster

log = logging.getLogger(__name__)


class GuardWatch:
    def __init__(self, hub: Hub, workers: GroupWorkers,
                 new_generation: Callable[[], int]) -> None:
        self.hub = hub
        self.workers = workers
        self.new_generation = new_generation

    def model(self) -> Cluster:
        """What the guard must know: every group that may run here, the configured ones and
        the removed ones until they are stopped."""
        c = self.hub.cluster
        return dataclasses.replace(c, groups=c.groups + tuple(self.hub.retiring.values()))

    def _watchdog_fd(self) -> int | None:
        w = self.hub.watchdog
        return None if w is None else w.fd

    def replace(self) -> None:
        """A reload changed what the guard must know: a new guard, fed before the old one
        leaves."""
        try:
            g = guard_mod.spawn(self.model(), self.hub.shared.me, self.hub.shared.key,
                                self._watchdog_fd())
        except OSError as e:
            log.error("reload: cannot start a guard for the new configuration (%s); the old "
                      "one stays, and does not know the added groups", e.strerror or e)
            return
        old, self.hub.guard = self.hub.guard, g
        self.hub.send_all()  # the new guard is fed before the old one leaves
        if old is not None:
            old.bye()
        log.info("reload: new guard started (pid %d)", g.pid)

    async def run(self) -> None:
        backoff = 1.0
        while True:
            g = self.hub.guard
            assert g is not None
            born = time.monotonic()
            await self._events(g)
            g.close()
            if self.hub.guard is not g:
                continue  # replaced by a reload: it left on our "bye"
            log.error("the guard process (pid %d) exited: starting a new one", g.pid)
            if time.monotonic() - born < 10.0:  # it dies at once: do not spin on it
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            else:
                backoff = 1.0
            new = None
            while new is None and self.hub.guard is g:
                try:
                    new = guard_mod.spawn(self.model(), self.hub.shared.me,
                                          self.hub.shared.key, self._watchdog_fd())
                except OSError as e:
                    log.error("cannot start a guard: %s; this node's groups are not stopped "
                              "if the daemon dies; retrying in 1 s", e.strerror or e)
                    await asyncio.sleep(1.0)
            if new is None:
                continue  # a reload started one meanwhile: watch that one
            g = self.hub.guard = new
            self.hub.send_all()  # tell it at once what it guards
            log.warning("new guard started (pid %d)", g.pid)

    async def _events(self, g: guard_mod.GuardLink) -> None:
        node = self.hub.node
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(g.fired_fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                news = g.read_fired()
                if news is None:
                    return
                for name in news.fired:
                    if name not in self.workers.kicks or self.workers.pending[name] or \
                            name in self.hub.retiring:
                        continue
                    found = await self.workers.probe(self.hub.cluster.group(name))
                    self.hub.log(node.reprobed(name, found, "the guard stopped it"))
                if news.left is not None and news.left == node.generation:
                    try:  # above this life's even if the wall clock stepped back
                        generation = max(self.new_generation(), node.generation + 1)
                    except VigilError as e:  # not stored: a restart's wall clock is later
                        log.error("%s", e)
                        generation = max(node.generation + 1, int(time.time() * 1000))
                    self.hub.log(node.new_life(generation, self.hub.clock()))
                if news.fired or news.left is not None:
                    self.hub.process()
        finally:
            loop.remove_reader(g.fired_fd)
