"""What reaches a node besides heartbeats, all of it about a peer that may be dead: the
fence agent, the witness, the probes of a dead peer's addresses and the disk mailbox.
Sans-IO.

`Node.side` is this class: the daemon's services for those channels
(daemon/services/fencing.py, witness_client.py, groups.py, the disk link) talk to it and
the node's core parts behind it (core/fencing.py, witness.py, lookout.py through
failover.py, pill.py) change; the node itself sees the result at its next `step`. The witness's
replies and the address probes move the node's latest time (core/latest.py), as heartbeats
do.
"""

from __future__ import annotations

from typing import Callable, Sequence

from vigil.core.failover import Failover
from vigil.core.fencing import PeerFencing
from vigil.core.frames import Frames
from vigil.core.groups import LocalGroups
from vigil.core.latest import Latest
from vigil.core.lookout import Result
from vigil.core.notes import Note
from vigil.core.peer import Peer
from vigil.core.pill import PoisonPill
from vigil.core.witness import WitnessClient
from vigil.model import Cluster
from vigil.wire.messages import NodeStatus


class Sideband:
    def __init__(self, cluster: Callable[[], Cluster], status: Callable[[], NodeStatus],
                 latest: Latest, frames: Frames, peer: Peer, groups: LocalGroups,
                 fencing: PeerFencing, failover: Failover, witness: WitnessClient | None,
                 pill: PoisonPill) -> None:
        """`cluster` and `status`: the node's configuration and status, as they are now."""
        self._cluster, self._status, self._latest = cluster, status, latest
        self.frames, self.peer, self.groups = frames, peer, groups
        self.fencing, self.failover, self.witness, self.pill = fencing, failover, witness, pill

    # --- the fence agent -------------------------------------------------------------------

    def fence_started(self) -> float | None:
        """Whether to run the fence agent now: how long to wait first, or None (PeerFencing.run)."""
        return self.fencing.run(self.peer.serves(), bool(self.groups.active()))

    def fence_result(self, ok: bool, detail: str, now: float) -> list[Note]:
        return self.failover.fence_result(ok, detail, now)

    def fence_confirm(self, node: str) -> str | None:
        """An operator says `node` is off. Returns an error, or None when accepted."""
        return self.failover.fence_confirm(node)

    # --- the witness -----------------------------------------------------------------------

    def wanted(self) -> tuple[str, ...]:
        """The groups to hold a lease on: those active here, and those it would take over."""
        return self.failover.wanted(self._cluster(), self.groups.active(),
                                    self._status() is NodeStatus.UP)

    def witness_ask(self, now: float) -> bytes:
        """The frame to send the witness now (every keepalive)."""
        assert self.witness is not None
        self._latest.see(now)
        return self.witness.ask_frame(self.frames, self.wanted(), now)

    def witness_reply(self, data: bytes, now: float) -> list[Note]:
        """The witness answered an ask. A reply to no outstanding ask changes nothing."""
        latest = self._latest.see(now)
        return self.failover.witness_reply(self.frames, data, self._cluster(),
                                           set(self.groups.states), now, latest)

    # --- the look before taking, the disk mailbox -------------------------------------------

    def probed_addresses(self, group: str, answers: Sequence[Result],
                         now: float) -> list[Note]:
        """What the Probe that step() returned for `group` heard (empty: all free)."""
        self._latest.see(now)
        return self.failover.probed_addresses(group, answers, now)

    def poison_frame(self, now_ms: int) -> bytes:
        """The pill to write into the peer's disk mailbox ([fencing] agent = "disk")."""
        return self.pill.frame(self.peer.view().generation, now_ms)

    def mail(self, data: bytes) -> list[Note]:
        """Our disk mailbox changed: a valid pill sets `poisoned` (the daemon then stops)."""
        return self.pill.mail(data)
