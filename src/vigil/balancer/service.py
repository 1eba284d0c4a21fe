"""The balancer as one service: the prober checks every real server all the time, on every
director; while this node runs a service's group (`activate(group)` from the group's start,
`deactivate(group)` from its stop) the service's rules are in the kernel, changed by one
transaction at each change of health, drain or configuration, and gone when the last group
stops. A refused transaction leaves the previous ruleset and is reported by `on_error`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from vigil.balancer import apply, checks, nft
from vigil.balancer.director import Director, Key
from vigil.balancer.health import Change
from vigil.balancer.model import VirtualServer
from vigil.balancer.prober import Prober, Runner

log = logging.getLogger(__name__)


class Balancer:
    def __init__(self, services: Sequence[VirtualServer], prefix: Sequence[str] = (),
                 runner: Runner = checks.run,
                 on_change: Callable[[Key, Change, checks.Result], None] | None = None) -> None:
        self.director = Director(services)
        self.prober = Prober(services, self._changed, runner)
        self.prefix = tuple(prefix)
        self.groups: set[str] = set()
        self.held: nft.Plan | None = None  # what the kernel holds; None: nothing of ours
        self.last_error: str | None = None
        self.on_change = on_change

    async def run(self) -> None:
        await self.prober.run()

    def _changed(self, key: Key, change: Change, result: checks.Result) -> None:
        log.info("real server %s of %s is %s (%s, %.0f ms)", key[1], key[0], change,
                 result.why, result.latency * 1000)
        if self.on_change is not None:
            self.on_change(key, change, result)
        self.sync()

    def activate(self, group: str) -> None:
        self.groups.add(group)
        self.sync()

    def deactivate(self, group: str) -> None:
        self.groups.discard(group)
        self.sync()

    def drain(self, service: str, server: str) -> None:
        self.director.drain(self.director.find(service, server))
        self.sync()

    def enable(self, service: str, server: str) -> None:
        self.director.enable(self.director.find(service, server))
        self.sync()

    def sync(self) -> None:
        """Bring the kernel to the plan for now; on refusal keep what it held."""
        if not self.groups:
            if self.held is not None:
                self._apply(nft.remove(), None)
            return
        new = self.director.plan(self.prober.up, lambda g: g in self.groups)
        self._apply(nft.transaction(self.held, new), new)

    def _apply(self, script: str, new: nft.Plan | None) -> None:
        try:
            apply.run(script, self.prefix)
        except apply.NftError as e:
            self.last_error = str(e)
            log.error("%s", e)
            return
        self.held, self.last_error = new, None
