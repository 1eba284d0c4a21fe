"""The balancer as one service: the prober checks every real server all the time, on every
director; while this node runs a service's group (`activate(group)` from the group's start,
`deactivate(group)` from its stop) the service's rules are in the kernel, changed by one
transaction at each change of health, drain or configuration, and gone when the last group
stops. A refused transaction leaves the previous ruleset; it is logged and kept in
`last_error`, and the change that asked for it (a group's start or stop, a drain) fails.

Transactions run one at a time (`nft -f` in a child process, off the event loop). Health
changes only mark the ruleset stale; `run`'s applier brings the kernel up to date, so a burst
of changes costs one transaction, not one each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from vigil.balancer import apply, checks, conns, counters, expire, nft, nft_dr, wiring
from vigil.balancer.ctsync_run import ConntrackSync
from vigil.balancer.director import Director, Key
from vigil.balancer.health import Change
from vigil.balancer.model import VirtualServer
from vigil.balancer.passive import RefusalWatch
from vigil.balancer.prober import Prober, Runner
from vigil.log import LimitedLog

log = logging.getLogger(__name__)

COUNT_EVERY = 2.0  # seconds between two reads of the traffic counters


class Balancer:
    def __init__(self, services: Sequence[VirtualServer], prefix: Sequence[str] = (),
                 runner: Runner = checks.run,
                 on_change: Callable[[Key, Change, checks.Result], None] | None = None,
                 conntrack: ConntrackSync | None = None, passive: bool = True) -> None:
        self.director = Director(services)
        self.conntrack = conntrack  # conntrackd: NAT connections survive a takeover
        self.prober = Prober(services, self._changed, runner)
        self.prefix = tuple(prefix)
        self.groups: set[str] = set()  # the groups running here
        self.held: dict[tuple[str, str], nft.Plan] = {}  # (family, table): what it holds
        self.wiring: dict[str, nft_dr.Wiring | None] = {}  # each directed service's routes
        self._gone: set[Key] = set()  # NAT servers whose connections were dropped
        self.traffic: dict[Key, counters.Traffic] = {}  # the kernel's, read by _count
        self.conns: dict[Key, conns.Conns] = {}  # open now, as of `connections`
        self.unknown = True  # the kernel may hold a table a crashed daemon left
        self.last_error: str | None = None
        self.on_change = on_change
        self._lock = asyncio.Lock()
        self._stale = asyncio.Event()
        # A flapping server's lines, and 200 servers changing at once: the events all go
        # out, the log lines at most 5 a second after a burst of 20.
        self._log = LimitedLog(log, 5, 20)
        self.passive: RefusalWatch | None = None
        self._passive_wanted = passive
        self._tg: asyncio.TaskGroup | None = None
        self._watch_refusals(services)

    async def run(self) -> None:
        """The checks, and the applier that follows their changes."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.prober.run(), name="balancer checks")
            if self.conntrack is not None:
                tg.create_task(self.conntrack.run(), name="conntrackd")
            if self.passive is not None:
                tg.create_task(self.passive.run(), name="passive detection")
            tg.create_task(self._count(), name="balancer counters")
            while True:
                await self._stale.wait()
                self._stale.clear()
                await self.sync()

    async def _count(self) -> None:
        """Read the kernel's traffic counters every COUNT_EVERY seconds while directing."""
        while True:
            await asyncio.sleep(COUNT_EVERY)
            if not self.held:
                self.traffic = {}
                continue
            try:
                found = await apply.counters(self.prefix)
            except apply.NftError as e:
                self._say(logging.WARNING, "the balancer's counters: %s", e)
                continue
            self.traffic = counters.read(found, self.director.counter_names())

    async def connections(self) -> str | None:
        """Count the connections each real server of a directed NAT service holds now
        (conns.py: on demand, one conntrack dump per service). An error, or None."""
        found: dict[Key, conns.Conns] = {}
        for name, vs in self.director.services.items():
            if vs.forward != "nat" or vs.group not in self.groups or not self.held:
                continue
            try:
                by_mark = await conns.read(self.director.numbers[name], self.prefix)
            except OSError as e:
                self.conns = {}
                return f"connections of {name}: {e}"
            for r in vs.real:
                key = (name, r.endpoint)
                found[key] = by_mark.get(self.director.mark_of(key), conns.Conns())
        self.conns = found
        return None

    def _refused(self, mark: int) -> None:
        key = self.director.key_of(mark)
        if key is not None:
            self.prober.refused(key)

    def _changed(self, key: Key, change: Change, result: checks.Result) -> None:
        self._say(logging.INFO, "real server %s of %s is %s (%s, %.0f ms)", key[1], key[0],
                  change, result.why, result.latency * 1000)
        if self.on_change is not None:
            self.on_change(key, change, result)
        self._stale.set()

    def _watch_refusals(self, services: Sequence[VirtualServer]) -> None:
        """Passive detection from the first TCP service on, at start or at a reload that
        adds it (it then keeps running: a watch with nothing to see costs nothing)."""
        if self.passive is not None or not self._passive_wanted or \
                not any(vs.protocol == "tcp" for vs in services):
            return
        self.passive = RefusalWatch(nft.NFLOG_GROUP, self._refused)
        if self._tg is not None:
            self._tg.create_task(self.passive.run(), name="passive detection")

    def reconfigure(self, services: Sequence[VirtualServer]) -> None:
        """A reload's virtual servers; the ruleset follows at once."""
        self.director.reconfigure(services)
        self.prober.reconfigure(services)
        self._watch_refusals(services)
        self.wiring.clear()
        self._stale.set()

    def _directing(self) -> bool:
        """Whether a group of some virtual server runs here."""
        return any(vs.group in self.groups for vs in self.director.services.values())

    def serves(self, group: str) -> bool:
        return any(vs.group == group for vs in self.director.services.values())

    async def activate(self, group: str) -> str | None:
        """This node now runs `group`: its services' rules go in. The error, if refused."""
        self.groups.add(group)
        if not self.serves(group):
            return None
        for vs in self.director.services.values():  # routes are asked anew at each start
            if vs.group == group:
                self.wiring.pop(vs.name, None)
        error = await self.sync()
        if error is None and self.conntrack is not None:
            # After the rules (their NAT hooks translate what is committed), before the
            # group's addresses bring the clients back. A failure is logged, not fatal:
            # the service runs, only the connections it did not get are lost.
            await self.conntrack.become_active()
        return error

    async def deactivate(self, group: str) -> str | None:
        """`group` stopped here: its services' rules go. The error, if refused."""
        self.groups.discard(group)
        if not (self.serves(group) or self.unknown):
            return None
        error = await self.sync()
        if self.conntrack is not None and self.serves(group) and not self._directing():
            await self.conntrack.become_backup()
        return error

    async def drain(self, service: str, server: str) -> str | None:
        """No new connection to `server`; KeyError naming what is unknown."""
        self.director.drain(self.director.find(service, server))
        return await self.sync()

    async def enable(self, service: str, server: str) -> str | None:
        self.director.enable(self.director.find(service, server))
        return await self.sync()

    async def present(self, group: str) -> bool:
        """Whether rules of `group`'s services may be in the kernel (its table is there).
        NftError when nft cannot tell."""
        return self.serves(group) and await apply.present(self.prefix)

    async def sync(self) -> str | None:
        """Bring the kernel to the plan for now; on refusal keep what it held and return
        the error."""
        async with self._lock:
            if not self._directing():
                if not self.held and not (self.unknown and self.director.services):
                    return None
                return await self._apply(apply.remove_all(), {})
            try:
                await self._wire()
                plans = {(p.family, p.table): p for p in self.director.plan(
                    self.prober.up, lambda g: g in self.groups, self._wiring_of,
                    self.prober.down)}
            except (wiring.WiringError, ValueError) as e:
                return self._failed(str(e))
            script = "".join(nft.transaction(self.held.get(k), p) for k, p in plans.items())
            script += "".join(nft.remove(*k) for k in apply.TABLES
                              if k not in plans and (k in self.held or self.unknown))
            error = await self._apply(script, plans)
            if error is None:
                await self._expire()
            return error

    async def _expire(self) -> None:
        """Drop the conntrack entries of the NAT servers gone since the last time
        (expire.py): failed, in a directed service that is not quiescent."""
        now = {(name, ep) for name, vs in self.director.services.items()
               if vs.forward == "nat" and vs.group in self.groups
               for ep in self.director.gone(vs, self.prober.down)}
        fresh, self._gone = now - self._gone, now
        for key in sorted(fresh, key=str):
            try:
                n = await expire.expire(self.director.mark_of(key), self.prefix)
            except OSError as e:
                self._say(logging.WARNING, "real server %s of %s: its connections stay: %s",
                          key[1], key[0], e)
                continue
            if n:
                self._say(logging.INFO, "real server %s of %s failed: its %d connection(s) "
                          "dropped (quiescent = false)", key[1], key[0], n)

    def _say(self, level: int, msg: str, *args: object) -> None:
        """A log line about real servers: at most 5 a second after a burst of 20."""
        self._log.log("change", level, msg, *args)

    async def _wire(self) -> None:
        """Ask the routes of each directed service not asked since its group started."""
        for vs in self.director.services.values():
            if vs.group in self.groups and vs.name not in self.wiring:
                self.wiring[vs.name] = await wiring.resolve(vs, self.prefix, log.warning)

    def _wiring_of(self, name: str) -> nft_dr.Wiring:
        w = self.wiring.get(name)
        if w is None:
            raise ValueError(f"virtual server {name!r}: no wiring found")
        return w

    def _failed(self, error: str) -> str:
        self.last_error = error
        log.error("%s", error)
        return error

    async def _apply(self, script: str, new: dict[tuple[str, str], nft.Plan]) -> str | None:
        try:
            await apply.apply(script, self.prefix)
        except apply.NftError as e:
            return self._failed(str(e))
        self.held, self.last_error, self.unknown = new, None, False
        return None

    def status(self) -> list[dict[str, Any]]:
        """Every virtual server as `vigil lb status` and the API show it."""
        out = []
        for name, vs in self.director.services.items():
            active = self.director.active(vs, self.prober.up)
            servers = []
            for r in vs.real:
                key = (name, r.endpoint)
                h = self.prober.health.get(key)
                res = self.prober.results.get(key)
                counts = self.prober.counts.get(key, {True: 0, False: 0})
                servers.append({
                    "address": str(r.endpoint), "weight": r.weight,
                    "health": "unknown" if h is None or h.up is None else
                              "up" if h.up else "down",
                    "drained": key in self.director.drained,
                    "taking": r.endpoint in active,
                    "last_check": None if res is None else res.why,
                    "latency_ms": None if res is None else round(res.latency * 1000, 1),
                    "checks_ok": counts[True], "checks_failed": counts[False],
                    "refusals": self.prober.refusals.get(key, 0),
                    "traffic": None if key not in self.traffic else
                               dataclasses.asdict(self.traffic[key]),
                    "connections": None if key not in self.conns else
                                   dataclasses.asdict(self.conns[key]),
                    "flaps": 0 if h is None else h.flaps})
            out.append({
                "name": name, "address": vs.describe(), "protocol": vs.protocol,
                "scheduler": vs.scheduler, "forward": vs.forward, "group": vs.group,
                "directing": vs.group in self.groups and bool(self.held),
                "quorum": vs.quorum, "below_quorum": len(active) < vs.quorum,
                "sorry_server": None if vs.sorry_server is None else str(vs.sorry_server),
                "servers": servers})
        return out
