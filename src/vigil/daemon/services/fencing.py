"""Fencing the peer: the agent, the fence device's check, and the disk poison pill.

Tasks: `fencing` (`run`: whenever the node says the peer must be fenced, run the agent with
its timeout, after the fence race's delay where it applies) and `fence monitor` (`monitor`:
fence_* agents only, every monitor_interval, which also sizes the race).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from vigil.core.fencing import FenceState
from vigil.daemon import disk as disk_mod
from vigil.daemon.hub import Hub
from vigil.errors import AgentError
from vigil.model import Fencing, poison_wait
from vigil.resources import fence as fence_mod

log = logging.getLogger(__name__)


class Fencer:
    def __init__(self, hub: Hub, f: Fencing) -> None:
        self.hub = hub
        self.f = f
        self.kick = asyncio.Event()
        self.check: dict[str, Any] = {}  # the latest fence device check, for status

    def monitored(self) -> bool:
        return self.f.agent not in ("manual", "external", "disk") and self.f.monitor_interval > 0

    async def run(self) -> None:
        node, f = self.hub.node, self.f
        while True:
            await self.kick.wait()
            self.kick.clear()
            delay = node.side.fence_started()
            if delay is None:
                continue
            peer = node.peer
            if delay:
                log.warning("%s was running groups and this node runs none: waiting %g s "
                            "before fencing it, so that it wins a fence race", peer, delay)
                await asyncio.sleep(delay)
                if node.fencing.state is not FenceState.RUNNING:
                    continue  # it came back meanwhile
            log.warning("fencing %s: %s %s", peer, f.agent, f.action)
            t0 = self.hub.clock()
            try:
                if f.agent == "disk":
                    detail = await self._poison(f.timeout)  # its wait is not the agent's
                else:
                    async with asyncio.timeout(f.timeout):
                        detail = await fence_mod.fence(f, peer)
                ok = True
            except TimeoutError:
                ok, detail = False, f"no answer within {f.timeout:g} s"
            except Exception as e:
                ok, detail = False, str(e) or type(e).__name__
            log.log(logging.WARNING if ok else logging.ERROR, "fence agent %s %s %s: %s in "
                    "%.0f ms%s", f.agent, f.action, peer, "ok" if ok else "FAILED",
                    (self.hub.clock() - t0) * 1000, f": {detail}" if detail else "")
            self.hub.log(node.side.fence_result(ok, detail, self.hub.clock()))
            self.hub.process()

    async def monitor(self) -> None:
        """Check the fence device every monitor_interval, and size the fence race with what
        the check took: a serving node's shot lands within one agent run, so the waiting
        node's `delay` must be longer than a run, or both may shoot."""
        f = self.f
        warned_delay = False
        while True:
            t0 = self.hub.clock()
            try:
                async with asyncio.timeout(f.timeout):
                    detail = await fence_mod.monitor(f, self.hub.node.peer)
                ok = True
            except TimeoutError:
                ok, detail = False, f"no answer within {f.timeout:g} s"
            except Exception as e:
                ok, detail = False, str(e) or type(e).__name__
            took = self.hub.clock() - t0
            was = self.check.get("ok")
            self.check = {"ok": ok, "ms": round(took * 1000), "detail": detail}
            if not ok and was is not False:
                log.error("FENCE DEVICE CHECK FAILED: %s; fencing %s would fail now",
                          detail, self.hub.node.peer)
            elif ok and was is not True:
                log.info("fence device answers: %s monitor ok in %.0f ms", f.agent,
                         took * 1000)
            if ok and 0 < f.delay < took and not warned_delay:
                warned_delay = True
                log.warning("the fence agent takes %.1f s, longer than [fencing] delay "
                            "(%g s): in a partition the waiting node may shoot before the "
                            "serving node's shot lands; set delay above %.1f s", took,
                            f.delay, took)
            await asyncio.sleep(f.monitor_interval)

    async def _poison(self, timeout: float) -> str:
        """Storage-based fencing: write the pill into the peer's disk mailbox, then wait
        until a live peer must have obeyed it (model.poison_wait). Succeeds when the peer
        stayed dead meanwhile; a peer heard again is not fenced, and needs no fencing."""
        node = self.hub.node
        disk = next(l for l in self.hub.shared.links if isinstance(l, disk_mod.DiskLink))
        try:
            async with asyncio.timeout(timeout):
                await disk.write_mail(node.side.poison_frame(int(time.time() * 1000)))
        except TimeoutError:
            raise AgentError(f"writing the poison pill to {disk.name} took over "
                             f"{timeout:g} s") from None
        wait = poison_wait(self.hub.cluster.timings)
        log.warning("poison pill written for %s on %s; waiting %.0f ms for it to obey",
                    node.peer, disk.name, wait * 1000)
        await asyncio.sleep(wait)
        if node.fencing.state is not FenceState.RUNNING:
            raise AgentError(f"{node.peer} came back while it was poisoned")
        return f"poison pill written on {disk.name}; no sign of life for {wait * 1000:.0f} ms"
