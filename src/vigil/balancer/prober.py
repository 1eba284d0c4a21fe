"""Every real server checked at its own interval, on every director (a takeover starts with
a warm view): one task per (service, server) that runs its check (checks.py), feeds the
result to its Health (health.py) and tells `on_change` when the server goes up or down.

Checks start spread over their first interval, so that 200 servers with one interval do not
all connect at once; each then keeps its own fixed rate. A check slower than its interval is
followed by the next one at once, never by a burst of the ones it missed. Each wakes on a
grid (a quarter of its timeout, 5 to 25 ms), so that checks due close together share one
wake-up of the event loop; the rate stays the interval's.

The tcp checks of IPv4 servers are half-open (a SYN, answered by SYN-ACK or RST), all of them
on one raw socket and in batches on a coarse tick (synprobe.py): a tenth of the cost of a
connect each. Without CAP_NET_RAW they fall back to connect checks, and `mode` says why.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence

from vigil.balancer import checks
from vigil.balancer.synprobe import SynChecks, SynProbe, on_grid, tick_for
from vigil.balancer.health import Change, Health
from vigil.balancer.model import Check, Endpoint, VirtualServer

Key = tuple[str, Endpoint]  # (service name, real server)
OnChange = Callable[[Key, Change, checks.Result], None]
Runner = Callable[[Check, Endpoint], Awaitable[checks.Result]]
log = logging.getLogger(__name__)


class Prober:
    def __init__(self, services: Sequence[VirtualServer], on_change: OnChange,
                 runner: Runner = checks.run, half_open: bool = True) -> None:
        self.on_change = on_change
        self.runner = runner
        # half-open tcp checks only with the real checks (a test's runner gets every check)
        self.half_open = half_open and runner is checks.run
        self.mode = "connect"  # how tcp checks are made: "half-open" once run() has its socket
        self._syn: SynChecks | None = None
        self.checks: dict[Key, Check] = {}
        self.health: dict[Key, Health] = {}
        self.results: dict[Key, checks.Result] = {}
        self.counts: dict[Key, dict[bool, int]] = {}
        self.refusals: dict[Key, int] = {}  # clients' connections refused (passive.py)
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self.reconfigure(services)

    def up(self, key: Key) -> bool:
        """Whether the server takes new connections by its checks (False until known)."""
        h = self.health.get(key)
        return h is not None and bool(h.up)

    def down(self, key: Key) -> bool:
        """Whether the server's checks found it failed (False until known)."""
        h = self.health.get(key)
        return h is not None and h.up is False

    def reconfigure(self, services: Sequence[VirtualServer]) -> None:
        """Check what `services` say from now on. A server whose check is unchanged keeps
        its task and its health; one whose check changed starts afresh (unknown, then its
        first result decides); one that is gone stops being checked."""
        wanted = {(vs.name, r.endpoint): r.check for vs in services for r in vs.real}
        for key in [k for k, c in self.checks.items() if wanted.get(k) != c]:
            task = self._tasks.pop(key, None)
            if task is not None:
                task.cancel()
            if self._syn is not None:
                self._syn.remove(key)
            del self.checks[key], self.health[key], self.counts[key]
            self.results.pop(key, None)
            self.refusals.pop(key, None)
        for key, check in wanted.items():
            if key not in self.checks:
                self.checks[key] = check
                self.health[key] = Health(check.rise, check.fall)
                self.counts[key] = {True: 0, False: 0}
                self._spawn(key)

    async def run(self) -> None:
        """Run every server's checks until cancelled (reconfigure adds and stops them)."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self._syn = self._open_syn()
            if self._syn is not None:
                tg.create_task(self._syn.run(), name="half-open tcp checks")
            for key in self.checks:
                self._spawn(key)
            try:
                await asyncio.Event().wait()
            finally:
                self._tg = None
                self._syn = None
                self._tasks.clear()

    def _open_syn(self) -> SynChecks | None:
        if not self.half_open:
            return None
        try:
            probe = SynProbe.open()
        except OSError as e:
            self.mode = f"connect (no raw socket for half-open checks: {e.strerror or e})"
            log.info("tcp checks connect: %s", self.mode)
            return None
        self.mode = "half-open"
        return SynChecks(probe, self._record)

    def _spawn(self, key: Key) -> None:
        if self._syn is not None and SynChecks.fits(self.checks[key], key[1]) and \
                self._syn.add(key, self.checks[key], key[1], f"{key[0]} {key[1]}"):
            return
        if self._tg is not None and key not in self._tasks:
            self._tasks[key] = self._tg.create_task(self._probe(key),
                                                    name=f"check {key[0]} {key[1]}")

    async def _probe(self, key: Key) -> None:
        check = self.checks[key]
        loop = asyncio.get_running_loop()
        if check.type == "none":
            self._record(key, checks.Result(True, "ok", 0.0))
            return
        # A stable spread over the first interval (the same on both directors).
        spread = zlib.crc32(f"{key[0]} {key[1]}".encode()) % 1000 / 1000
        next_at = loop.time() + check.interval * spread
        tick = tick_for(check)
        while True:  # woken on the grid: the checks due in one tick share a wake-up
            await asyncio.sleep(max(0.0, on_grid(next_at, tick) - loop.time()))
            next_at += check.interval
            result = await self.runner(check, key[1])
            self._record(key, result)
            if next_at < loop.time():  # a check slower than its interval: no burst after it
                next_at = loop.time()

    def refused(self, key: Key) -> None:
        """A client's connection to the server was refused (seen passively): one failed
        check, as far as rise and fall go."""
        if key not in self.health or self.checks[key].type == "none":
            return
        self.refusals[key] = self.refusals.get(key, 0) + 1
        self._record(key, checks.Result(False, "refused a client's connection (reset)", 0.0),
                     counted=False)

    def _record(self, key: Key, result: checks.Result, counted: bool = True) -> None:
        self.results[key] = result
        if counted:
            self.counts[key][result.ok] += 1
        change = self.health[key].observe(result.ok, result.why)
        if change is not None:
            self.on_change(key, change, result)
