"""The hub: the only owner of the sans-IO core (core/node.py) in the daemon. No tasks.

Every input reaches the node through the hub, synchronously, between two awaits: a frame
(`receive`), the disk mailbox (`mail`), a timer (`tick`), or what a service learned (it
calls the node, then `process`). So no decision ever sees a half-applied input. `process`
runs the policy once and hands out the step: actions to the group workers, frames to every
link (and the guard and the watchdog fed with them), addresses to re-announce, a witness
ask when what this node wants changed, the fence kick, the transitions to the bus, and the
end of a clean shutdown once nothing is held.

The services (daemon/services/) own their tasks and reach the hub through these methods
and the shared state below; the hub reaches back only through `Outlets`, the few calls a
step needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from vigil import events
from vigil.core.fencing import FenceState
from vigil.core.node import Node
from vigil.core.notes import Note
from vigil.daemon import guard as guard_mod, links as links_mod
from vigil.daemon.bus import Bus
from vigil.daemon.metrics import Metrics
from vigil.daemon.notes import NoteLog
from vigil.daemon.sdnotify import Notifier
from vigil.daemon.watchdog import Watchdog
from vigil.model import Cluster, Group, IpResource
from vigil.policy import Action, Recover, Start
from vigil.resources.host import Host

log = logging.getLogger(__name__)


class Outlets(Protocol):
    """What a step hands to the services (daemon/app.py wires them)."""

    def submit(self, action: Action) -> None: ...  # to the group's worker
    def busy(self) -> bool: ...  # a group worker has work queued
    def ask_witness(self, force: bool) -> None: ...  # only if what we want changed, unless forced
    def kick_fencing(self) -> None: ...


@dataclass
class Shared:
    """What the daemon's parts share, fixed at start (the cluster changes on a reload)."""

    cluster: Cluster
    me: str
    key: bytes
    host: Host
    links: list[links_mod.HeartbeatLink]


class Hub:
    def __init__(self, shared: Shared, node: Node, bus: Bus, metrics: Metrics,
                 notifier: Notifier, guard: guard_mod.GuardLink | None,
                 watchdog: Watchdog | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.shared = shared
        self.node = node
        self.bus = bus
        self.metrics = metrics
        self.notifier = notifier
        self.guard = guard  # replaced by the guard watch and by a reload
        self.watchdog = watchdog  # opened by main.py, before the guard that shares it
        self.clock = clock
        self.outlets: Outlets | None = None
        self.notes = NoteLog(log)  # what untrusted input makes us say is rate-limited
        # The node's next deadline, as one timer of the loop, moved only when it changes
        # (a task woken after every input to re-arm it cost a wakeup per frame).
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.quiet = asyncio.Event()  # leaving, and nothing is held any more
        self.leaving = False
        self.closing = False  # set once the links begin to close
        self.ready = False  # told systemd
        self.retiring: dict[str, Group] = {}  # removed by a reload, not yet stopped here
        self._heard: dict[int, float] = {}  # link index -> the peer's last valid frame on it
        self._seen = self._snapshot()
        self.after_step: list[Callable[[], None]] = []  # called after each step (keepers)

    @property
    def cluster(self) -> Cluster:
        return self.shared.cluster

    # --- inputs ----------------------------------------------------------------------------

    def receive(self, data: bytes, link: int) -> None:
        """A datagram from heartbeat link `link`."""
        if self.closing:
            return
        now = self.clock()
        before = self.node.frames.received
        self.log(self.node.receive(data, link, now))
        if self.node.frames.received != before:  # authentic and new: time it for the metrics
            last = self._heard.get(link)
            self._heard[link] = now
            if last is not None:
                self.metrics.heartbeat(self.node.link_names[link], now - last,
                                       self.cluster.timings.warntime)
        self.process()

    def mail(self, data: bytes, stop: Callable[[], None]) -> None:
        """Our disk mailbox changed; `stop` begins the clean shutdown a poison pill asks."""
        if self.closing:
            return
        self.log(self.node.side.mail(data))
        if self.node.poisoned:
            stop()

    def tick(self) -> None:
        self.log(self.node.tick(self.clock()))
        self.process()

    def tell(self, notes: list[Note]) -> None:
        """A service changed the node (its notes): decide again if it said anything."""
        if notes:
            self.log(notes)
            self.process()

    # --- outputs ---------------------------------------------------------------------------

    def process(self) -> None:
        """Run the policy on the current state and dispatch what it says."""
        assert self.outlets is not None
        step = self.node.step(self.clock())
        self.log(list(step.notes))
        for act in step.actions:
            self.outlets.submit(act)
            if isinstance(act, Start):
                self.metrics.acquired["peer_dead" if act.failover else "handover"] += 1
            elif isinstance(act, Recover):
                self.metrics.acquired["recover"] += 1
        if step.send:
            self.send_all()
        for name in step.reannounce:
            if name in self.retiring or name not in self.node.local:
                continue  # removed by a reload meanwhile
            for r in self.cluster.group(name).resources:
                if isinstance(r, IpResource) and \
                        self.shared.host.announcer.reannounce(r.address.ip):
                    log.info("re-announcing %s after %s released it", r.address.ip,
                             self.node.peer)
        self.outlets.ask_witness(False)  # at once if it changed: a takeover waits for it
        self.emit()
        self._arm()
        if self.node.fencing.state is FenceState.NEEDED:
            self.outlets.kick_fencing()
        if self.leaving and self.node.quiescent() and not self.outlets.busy():
            self.quiet.set()
        for call in self.after_step:
            call()

    def _arm(self) -> None:
        """Tick the node at its next deadline (clock() is the loop's time.monotonic)."""
        deadline = self.node.next_deadline()
        if deadline == self._deadline and (self._timer is not None or deadline is None):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._deadline = deadline
        self._timer = None if deadline is None else \
            asyncio.get_running_loop().call_at(deadline, self._due)

    def _due(self) -> None:
        self._timer = self._deadline = None
        if not self.closing:
            self.tick()

    def close(self) -> None:
        """No more inputs: the links are closing."""
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def send_all(self) -> None:
        """A heartbeat on every link; the guard and the watchdog hear we live exactly when
        the peer does."""
        for link in self.shared.links:
            link.send(self.node.frame(link.index, self.clock()))
        if self.guard is not None:
            self.guard.feed(self.node.active_groups(), self.node.generation,
                            self.node.frames.seq, self.node.sent_report)
        if self.watchdog is not None:
            self.watchdog.feed()

    def log(self, notes: list[Note]) -> None:
        self.notes.write(notes, self.clock())

    # --- transitions -----------------------------------------------------------------------

    def _snapshot(self) -> events.Snapshot:
        node = self.node
        peer = node.membership.view(node.peer)
        fence = node.fencing.state
        return events.Snapshot(
            self.shared.me, node.peer, peer.liveness.value,
            tuple((l.name, l.status.value) for l in peer.links),
            tuple((g, st.value) for g, st in node.local.items()),
            None if fence is None else fence.value, node.fencing.detail,
            tuple((g.name, why) for g in self.cluster.groups
                  if (why := node.lookout.blocks(g.name)) and "answered" in why))

    def emit(self) -> None:
        """Publish what changed since the last call; called after every input is processed,
        so each transition is published once (events.py). The first time the peer's state
        is known, systemd hears READY=1; later, a status line on each change."""
        now = self._snapshot()
        changes = events.diff(self._seen, now)
        self._seen = now
        if changes:
            self.bus.publish(changes)
        if now.peer_state != "unknown" and (changes or not self.ready):
            text = (f"{self.shared.me}: {now.peer} {now.peer_state}; running "
                    f"{', '.join(events.running(now)) or 'nothing'}")
            if not self.ready:
                self.ready = True  # the initial membership is known: systemd may go on
                self.notifier.ready(text)
                if self.notifier.enabled:
                    log.info("told systemd: ready (%s)", text)
            else:
                self.notifier.status(text)
