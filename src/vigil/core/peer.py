"""The peer as this node knows it: its latest report, when it died or left, and what its
links say. Sans-IO.

Membership (core/membership.py) says whether the peer is up or dead; a `Peer` keeps what the
node makes of that and of the peer's reports: the latest report of its current life (`adopt`,
which also says what in it is news), when it was last declared dead and when it last said
goodbye (`died`, `came_back`), whether only its disk heartbeat still moves (a network
partition: `link_news`), and the questions the node's parts ask about it (`dead`, `known`,
`unheard`, `restarting`, `ping_worse`, `left_without`, `serves`). The node keeps its peers by
name (core/node.py): one, while the configuration admits two nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Mapping

from vigil import policy
from vigil.core.membership import HeartbeatLate, LinkDead, LinkUp, Liveness, Membership, NodeView
from vigil.core.notes import Level, Note
from vigil.wire.messages import ACTIVE_STATES, GroupState, Heartbeat


@dataclass(frozen=True, slots=True)
class News:
    """What a newer report says that the node must act on, for the groups it knows."""

    eligible_again: tuple[str, ...] = ()  # the peer can run these again: they may come home
    failed: tuple[str, ...] = ()  # newly FAILED there: a stop failed, it may hold them
    resolved: tuple[str, ...] = ()  # a conflict over them is over: announce them again


class Peer:
    def __init__(self, name: str, membership: Membership, deadtime: float,
                 disk_links: AbstractSet[str] = frozenset()) -> None:
        """`disk_links`: the names of the disk heartbeat links (the partition alarm)."""
        self.name = name
        self.report: Heartbeat | None = None  # its latest heartbeat, of its current life
        self.dead_at: float | None = None  # when it was last declared dead
        self.left_at: float | None = None  # when it last said goodbye (a clean leave)
        self.partitioned = False  # every network link to it is dead, its disk slot moves
        self._key: tuple[int, int] = (-1, -1)  # (generation, seq) of `report`
        self._membership = membership
        self._deadtime = deadtime
        self._disk_links = disk_links

    def view(self) -> NodeView:
        return self._membership.view(self.name)

    def dead(self) -> bool:
        return self._membership.view(self.name).liveness is Liveness.DEAD

    def known(self) -> bool:
        """Heard, or given up on (initdead passed): no longer UNKNOWN."""
        return self._membership.view(self.name).liveness is not Liveness.UNKNOWN

    def restarting(self, generation: int) -> bool:
        """An authentic frame of its life `generation` proved nothing yet (session.py): is
        that life new to us (the peer is not up here, or up under another life)? Then it
        may have just started, and must hear us at once to prove itself."""
        view = self._membership.view(self.name)
        return view.liveness is not Liveness.UP or view.generation != generation

    def unheard(self) -> bool:
        """Dead, or silent on every link: also when our own cables are out, which keeps the
        peer from being declared dead here while it may well declare us dead."""
        view = self._membership.view(self.name)
        return view.liveness is Liveness.DEAD or \
            not any(l.status is Liveness.UP for l in view.links)

    # --- its reports -----------------------------------------------------------------------

    def adopt(self, hb: Heartbeat, key: tuple[int, int],
              local: Mapping[str, GroupState]) -> News | None:
        """A heartbeat numbered `key` (generation, seq): None when it is no newer than
        `report`; else it is the report now, and what it says anew of the groups in `local`
        (this node's states) is returned."""
        if key <= self._key:
            return None
        before = self.report if key[0] == self._key[0] else None
        self._key = key
        self.report = hb
        again, failed, resolved = [], [], []
        for r in hb.groups:
            if r.name not in local:
                continue
            prev = before.group(r.name) if before else None
            if prev is not None and r.eligible and not prev.eligible:
                again.append(r.name)
            if r.state is GroupState.FAILED and (prev is None or
                                                 prev.state is not GroupState.FAILED):
                failed.append(r.name)
            if policy.conflict_resolved(prev.state if prev else None, r.state, local[r.name]):
                resolved.append(r.name)
        return News(tuple(again), tuple(failed), tuple(resolved))

    def serves(self) -> bool:
        """Its report says it has a group active (the fence race: model.Fencing.delay)."""
        return self.report is not None and any(r.state in ACTIVE_STATES
                                               for r in self.report.groups)

    def ping_worse(self, mine: int | None) -> bool:
        """ipfail: the peer is up and reaches more ping nodes than our `mine`."""
        if mine is None or self.report is None or self.report.ping is None:
            return False
        if self._membership.view(self.name).liveness is not Liveness.UP:
            return False
        return self.report.ping > mine

    # --- its death and return --------------------------------------------------------------

    def died(self, reason: str, now: float) -> None:
        """Declared dead (membership's `reason`). A peer that left cleanly ("shutdown")
        reported its groups stopped: nothing to settle (core/failover.py), but its goodbye
        counts for one deadtime (`left_without`)."""
        self.dead_at = None if reason == "shutdown" else now
        self.left_at = now if reason == "shutdown" else None

    def came_back(self) -> None:
        self.dead_at = self.left_at = None

    def left_without(self, group: str, now: float) -> bool:
        """The peer said goodbye with `group` stopped, at most one deadtime ago: nothing
        runs there, so this node may take the group and hold it while its lease is on the
        way (it asks at once; the witness may not have heard the goodbye yet). Without the
        "hold" half, the torture test saw a takeover after a clean leave start, stop for
        want of a lease and start again when the lease came. The window is one deadtime;
        after it, no lease means no group again. A peer that restarts within it and hears
        us at once could start on a report we sent before the goodbye, as after any clean
        shutdown: a real restart takes far longer than our next heartbeat (see
        test_guard_goodbye's simulation, which restarts no sooner than 0.2 s)."""
        if self.left_at is None or now >= self.left_at + self._deadtime \
                or self.report is None or not self._membership.view(self.name).left:
            return False
        r = self.report.group(group)
        return r is not None and r.state is GroupState.STOPPED

    def deadlines(self, now: float) -> list[float]:
        """When the goodbye's window (`left_without`) closes, if after `now`."""
        if self.left_at is not None and self.left_at + self._deadtime > now:
            return [self.left_at + self._deadtime]
        return []

    # --- its links -------------------------------------------------------------------------

    def link_news(self, e: LinkUp | LinkDead | HeartbeatLate) -> list[Note]:
        """What membership's news of one link says for the log."""
        if isinstance(e, LinkUp):
            return [Note(Level.INFO, f"Link {e.node}:{e.link} up.")] + self._check_partition()
        if isinstance(e, LinkDead):
            return [Note(Level.WARNING, f"Link {e.node}:{e.link} dead. "
                                        f"silent_ms={e.silent * 1000:.0f}")] + \
                self._check_partition()
        return [Note(Level.WARNING, f"Late heartbeat from {e.node} on {e.link}: "
                                    f"{e.gap * 1000:.0f} ms")]

    def _check_partition(self) -> list[Note]:
        """The disk heartbeat's alarm: the peer writes its slot, so it lives, but every
        network link to it is dead. It is not taken over (it is not dead); an operator must
        look at the network."""
        if not self._disk_links:
            return []
        links = self._membership.view(self.name).links
        disk_up = any(l.status is Liveness.UP for l in links if l.name in self._disk_links)
        net = [l for l in links if l.name not in self._disk_links]
        now = disk_up and bool(net) and all(l.status is Liveness.DEAD for l in net)
        if now == self.partitioned:
            return []
        self.partitioned = now
        peer = self.name
        if now:
            return [Note(Level.ERROR, f"NETWORK PARTITION: every network link to {peer} is "
                                      f"dead but its disk heartbeat moves: {peer} is alive "
                                      f"and keeps what it runs; not taking over")]
        return [Note(Level.WARNING, f"network partition over: a network link to {peer} is up "
                                    f"again" if disk_up else
                                    f"network partition over: {peer}'s disk heartbeat stopped "
                                    f"too")]
