"""One cluster node's whole protocol state, sans-IO: frames in, frames and actions out.

The daemon owns sockets, timers and resource agents; `Node` owns everything they feed, as a
coordinator over the parts of core/ (core/__init__.py lists them): each input goes to the
parts it concerns, and `step` runs the policy over what they hold and applies its decision
through the ownership seam (core/ownership.py). Inputs (`receive`, `tick`, `request`,
`probed`, `finished`, `set_eligible`, `leave`...) take `now` as an argument and return
`Note`s for the log; `step` returns what the daemon must do. Tests drive two of these over a
fake network (tests/unit/test_node_sim.py) exactly as the daemon drives one over UDP.

Local group states move only in core/underway.py, along core/groups.py's table: STOPPED ->
STARTING (step returns Start) -> RUNNING or, on failure, STOPPED with the group marked
ineligible; RUNNING -> STOPPING (step returns Stop) -> STOPPED, or FAILED when the stop failed
(then the group is blocked: never started elsewhere while this node lives, because its
report says FAILED).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from vigil import policy
from vigil.core.agenda import Agenda
from vigil.core.eligibility import Eligibility
from vigil.core.failover import Failover
from vigil.core.fencing import PeerFencing
from vigil.core.frames import Dropped, Frames
from vigil.core.groups import LocalGroups
from vigil.core.latest import Latest
from vigil.core.lookout import Lookout
from vigil.core.membership import Membership
from vigil.core.notes import Level, Note
from vigil.core.ownership import Gossip, Ownership
from vigil.core.peer import Peer
from vigil.core.pill import PoisonPill
from vigil.core.promotable import Promotable
from vigil.core.reloading import Reloading
from vigil.core.sideband import Sideband
from vigil.core.stall import Stall
from vigil.core.underway import Underway
from vigil.core.witness import WitnessClient
from vigil.model import Cluster, witness_lease
from vigil.policy import Action, Probe
from vigil.replica.promotion import Replica
from vigil.wire import frame as wire
from vigil.wire.messages import (Assignment, GroupReport, GroupState, Heartbeat, NodeStatus,
                                 serialize)


@dataclass(frozen=True, slots=True)
class Step:
    actions: tuple[Action, ...]
    send: bool  # our state changed: send a heartbeat on every link now
    notes: tuple[Note, ...]
    reannounce: tuple[str, ...] = ()  # groups whose addresses must be announced again


class Node:
    def __init__(self, cluster: Cluster, me: str, key: bytes, generation: int,
                 link_names: Sequence[str], now: float, disk_links: Sequence[int] = (),
                 slow_links: Sequence[int] = (), skip_release_wait: bool = False) -> None:
        """`disk_links`: the indexes of disk heartbeats (a partition alarm, the poison
        pill); `slow_links`: those whose frames wait for a timer or their airtime (disk and
        serial), where a frame may be older and still count (session.py);
        `skip_release_wait`: the torture test's broken build (policy View)."""
        self.cluster, self.me, self.skip_release_wait = cluster, me, skip_release_wait
        self.status = NodeStatus.STARTING
        self.sent_report = b""  # the payload of the latest heartbeat: what the guard is fed
        self.link_names = tuple(link_names)
        self.disk_links = frozenset(self.link_names[i] for i in disk_links)
        self.slow_links = frozenset(slow_links) | frozenset(disk_links)
        self.waiting: dict[str, str] = {}  # group -> why the policy holds it
        self._latest = Latest(now)  # the latest time any input carried
        t, names = cluster.timings, [p.name for p in cluster.peers(me)][:1]  # two nodes yet
        self.membership = Membership(names, self.link_names, t, now)
        self.peers = {n: Peer(n, self.membership, t.deadtime, self.disk_links) for n in names}
        self.other = self.peers[names[0]]  # the one peer while config/ admits two nodes
        self.peer = self.other.name
        self.frames = Frames(cluster.name, me, self.peer, key, generation, self.link_names,
                             t, now)
        self.agenda = Agenda(t.keepalive)
        self.ownership: Ownership = Gossip((g.name, g.home) for g in cluster.groups)
        self.groups = LocalGroups(g.name for g in cluster.groups)
        self.stall = Stall(t, self.membership, self.agenda)
        self.fencing = PeerFencing(cluster.fencing)
        self.witness = (WitnessClient(witness_lease(cluster), now, t.deadtime / 2)
                        if cluster.witness is not None else None)
        self.pill = PoisonPill(self.frames, me, self.peer)
        self.lookout = Lookout(t.keepalive)  # probed again every keepalive
        self.promotable = Promotable(me, self.other, (
            (g.name, g.replica.policy) for g in cluster.groups if g.replica is not None))
        self.eligibility = Eligibility((g.name for g in cluster.groups), self.local, self.other,
                                       self.witness, self.agenda, len(cluster.ping),
                                       self.disk_links, self.promotable)
        self.eligible, self.fails = self.eligibility.eligible, self.eligibility.fails
        self.underway = Underway(self.groups, self.eligibility, self.lookout, self.agenda)
        self.failover = Failover(me, self.other, self.fencing, self.witness, self.lookout,
                                 self.eligibility, self.agenda,
                                 t.deadtime + self.frames.session.max_age)
        self.side = Sideband(lambda: self.cluster, lambda: self.status, self._latest,
                             self.frames, self.other, self.groups, self.fencing,
                             self.failover, self.witness, self.pill)
        self.reloading = Reloading(self)  # a live reload's inputs (core/reloading.py)

    @property
    def generation(self) -> int:
        """This life's generation (a new one after the guard's goodbye: `new_life`)."""
        return self.frames.generation

    @property
    def _now(self) -> float:
        return self._latest.t

    @property
    def local(self) -> Mapping[str, GroupState]:
        """Each group's state on this node."""
        return self.groups.states

    @property
    def assignments(self) -> dict[str, Assignment]:
        return self.ownership.assignments

    @property
    def report(self) -> Heartbeat | None:
        return self.other.report  # the peer's latest heartbeat, of its current life

    @property
    def partitioned(self) -> bool:
        return self.other.partitioned  # every network link to the peer is dead, not its disk

    @property
    def ping_count(self) -> int | None:
        return self.eligibility.ping_count  # ping nodes we reach (None: unknown / none)

    @property
    def poisoned(self) -> str | None:
        return self.pill.poisoned  # who told this node to stop (disk poison pill)

    # --- inputs ----------------------------------------------------------------------------

    def receive(self, data: bytes, link: int, now: float) -> list[Note]:
        """One datagram from link `link`. Bad input is counted and changes nothing else."""
        self._latest.see(now)
        notes = self.stall.notice(now)
        got = self.frames.heartbeat(data, link, link in self.slow_links, now)
        if isinstance(got, Dropped):
            if got.unverified is not None and self.other.restarting(got.unverified):
                self.agenda.answer = True  # let it hear us at once
            return notes + got.notes
        f, hb = got.frame, got.heartbeat
        news = self.other.adopt(hb, (f.generation, f.seq), self.local)
        if news is not None:  # its records through the ownership seam, the rest to failover
            self.agenda.send |= self.ownership.heard(hb.groups)
            self.agenda.notes += self.failover.heard(news, self.cluster, self._now)
            for name in self.promotable.policies:  # its instances: may we hold them?
                self.agenda.notes += self.eligibility.update(name, self._now)
        events = self.membership.on_heartbeat(f.sender, self.link_names[link], f.generation, now,
                                              leaving=hb.status is NodeStatus.LEAVING,
                                              made=got.made)
        return notes + self.failover.on_events(events, self.cluster, self.assignments, now,
                                               self._now)

    def tick(self, now: float) -> list[Note]:
        self._latest.see(now)
        notes = self.stall.notice(now) + self.eligibility.expire(self.cluster, now)
        self.fencing.tick(now)
        self.stall.tick(now, self.assignments)
        notes += self.failover.on_events(self.membership.on_tick(now), self.cluster,
                                         self.assignments, now, self._now)
        return notes + self.eligibility.update_all(self._now)

    def probed(self, states: dict[str, GroupState],
               partly: Mapping[str, int] | None = None) -> list[Note]:
        """The start-up probe found these states (and, for groups found only in part, the
        first resource absent); from now on this node takes part."""
        notes = self.underway.probed(states, partly, self.cluster)
        self.status = NodeStatus.UP
        return notes + [Note(Level.INFO, "Local status now set to: 'up'")]

    def finished(self, group: str, result: GroupState, detail: str = "",
                 ms: float | None = None) -> list[Note]:
        """The daemon finished the Start or Stop that step() returned for `group`: RUNNING,
        STOPPED or FAILED (see Underway.finished)."""
        return self.underway.finished(group, result, detail, ms, self.peer, self._now)

    def resource_failed(self, group: str, index: int, kind: str, detail: str,
                        now: float) -> list[Note]:
        """A monitor of resource `index` of `group` failed: kind "not_running", "soft", "hard"
        or "fatal" (see Underway.resource_failed)."""
        self._latest.see(now)
        return self.underway.resource_failed(self.cluster, group, index, kind, detail, now,
                                             self._now)

    def fail_count(self, group: str, now: float) -> int:
        return self.eligibility.fail_count(self.cluster, group, now)

    def cleanup(self, group: str) -> bool:
        """An operator cleared the group's failures. True when the caller must probe the
        group again (a failed stop: only a probe can tell what is still there)."""
        self.eligibility.cleanup(group, self._now)
        return self.local[group] is GroupState.FAILED

    def reprobed(self, group: str, found: GroupState, why: str = "cleaned up") -> list[Note]:
        """What a probe found after `cleanup` or after the guard stopped the group."""
        return self.underway.reprobed(group, found, why)

    def set_eligible(self, group: str, healthy: bool) -> list[Note]:
        """Whether this node's resources for `group` can work (interfaces up)."""
        return self.eligibility.set_health(group, healthy, self._now)

    def set_replica(self, group: str, replica: Replica) -> list[Note]:
        """This node's instance of promotable `group` as just examined (core/promotable.py)."""
        if not self.promotable.set_mine(group, replica):
            return []
        self.agenda.send = True
        return self.eligibility.update(group, self._now)

    def force_promotion(self, group: str) -> tuple[str | None, str, list[Note]]:
        """An operator's --force (core/promotable.py): (an error, "", []) or (None, the
        refusal it overrides, the notes)."""
        error, why = self.promotable.force(group)
        if error is not None:
            return error, "", []
        return None, why, [Note(Level.WARNING, f"an operator forced the promotion of group "
                                               f"{group} here, although {why}")] + \
            self.eligibility.update(group, self._now)

    def set_ping(self, count: int | None) -> list[Note]:
        """How many ping nodes this node reaches now (daemon/ping.py)."""
        return self.eligibility.set_ping(count, self._now)

    def set_link_local(self, link: int, up: bool, now: float) -> list[Note]:
        """Our own interface of `link` lost or regained carrier (see membership)."""
        notes = self.eligibility.set_carrier(self.link_names[link], up, self._now)
        if notes:  # news
            self.membership.set_local(self.link_names[link], up, now)
        return notes

    def request(self, what: str, which: str = "all", group: str = "",
                to: str = "") -> policy.RequestResult:
        """An operator's standby, takeover or move (policy.request)."""
        result = policy.request(self.view(), self.cluster, what, which, group, to)
        self.agenda.send |= self.ownership.assign(result.assignments)
        return result

    def leave(self) -> None:
        """Begin a clean shutdown: release everything (handing it to the peer if it is up)."""
        self.status = NodeStatus.LEAVING
        self.agenda.send = True

    # --- a stall the guard said goodbye for ----------------------------------------------

    def new_life(self, generation: int, now: float) -> list[Note]:
        """The guard said goodbye for this daemon while it stalled (daemon/guard.py): the
        peer ignores the rest of this generation, and the witness has freed our leases.
        Go on as a restarted daemon would: under a new generation, holding no lease, and
        starting nothing for one deadtime (the peer may hold our groups without a lease
        for that long after a goodbye: see Peer.left_without)."""
        old = self.generation
        self.frames.new_life(generation)
        self._latest.see(now)
        if self.witness is not None:
            self.witness.new_life()
        self.stall.hold_for(now, self.cluster.timings.deadtime)
        self.agenda.send = True
        return [Note(Level.WARNING, f"the guard said goodbye for generation {old} while this "
                                    f"daemon stalled: going on as generation {generation}")]

    # --- outputs ---------------------------------------------------------------------------

    def step(self, now: float) -> Step:
        self._latest.see(now)
        notes = self.agenda.take_notes() + self.stall.notice(now)
        if self.agenda.failback and self.status is NodeStatus.UP:
            result = policy.failback(self.view(now), self.cluster, self.agenda.take_failback())
            if result.assignments:
                notes.append(Note(Level.INFO, result.message))
                self.agenda.send |= self.ownership.assign(result.assignments)
        decision = policy.decide(self.view(now), self.cluster)
        notes += [Note(Level.INFO, r) for r in decision.reasons]
        self.agenda.send |= self.ownership.assign(decision.assignments)
        notes += self.underway.take(decision.actions, self.cluster, self.other)
        self.waiting = decision.waiting
        notes += self.underway.settled(self.status is NodeStatus.UP, bool(self.waiting),
                                       self.other)
        changed = any(not isinstance(a, Probe) for a in decision.actions)  # a probe: no change
        return Step(tuple(decision.actions), self.agenda.take_send(now) or changed,
                    tuple(notes), self.agenda.take_reannounce())

    def heartbeat(self, now: float | None = None) -> Heartbeat:
        # Until every group is released, a leaving node still reports itself up, or the peer
        # would stop listening to it before it reports the groups stopped.
        status = self.status if self.status is NodeStatus.STARTING or (
            self.status is NodeStatus.LEAVING and self.quiescent()) else NodeStatus.UP
        # While starts are held after a stall we cannot take a group: say so, or the peer
        # would hand one over (failback) only for it to wait out the hold, unserved.
        able = self.status is NodeStatus.UP and not self.stall.holding()
        groups = tuple(GroupReport(g.name, self.local[g.name], self.assignments[g.name],
                                   self.eligible[g.name] and able) for g in self.cluster.groups)
        t = self._now if now is None else now
        return Heartbeat(status, groups, self.ping_count if self.cluster.ping else None,
                         not self.other.dead(), self.frames.session.made(t),
                         self.frames.session.echo(t), self.promotable.reports())

    def frame(self, link: int, now: float) -> bytes:
        # The first heartbeat after a SIGCONT is often what runs first: notice the stall
        # before it hides it (its notes go out with the next step).
        self.agenda.notes += self.stall.notice(now)
        self.stall.sent(now)
        payload = self.sent_report = serialize(self.heartbeat(now))
        data = self.frames.encode(wire.FrameKind.HEARTBEAT, payload, link)
        self.frames.session.sent(self.frames.seq, now)
        return data

    def quiescent(self) -> bool:
        """No group is active here (all stopped or failed): a leaving node may go."""
        return self.groups.quiescent()

    def active_groups(self) -> list[str]:
        """Groups that may hold resources here: what the guard must stop if we die."""
        return self.groups.active()

    def view(self, now: float | None = None) -> policy.View:
        t = self._now if now is None else now
        return policy.View(
            me=self.me, status=self.status,
            groups={n: policy.LocalGroup(s, self.eligible[n]) for n, s in self.local.items()},
            assignments=dict(self.assignments), peer=self.other.view(), report=self.report,
            may_start=now is None or not self.stall.holding(now),
            takeover_blocked=self.failover.blocked(self.cluster, t, self._now),
            start_blocked=self.failover.start_blocked(self.cluster, t),
            recover=self.underway.recover(),
            looks_due={} if now is None else self.failover.looks_due(self.local, now),
            skip_release_wait=self.skip_release_wait)

    def next_deadline(self) -> float | None:
        times = [t for t in (self.membership.next_deadline(), self.stall.next_deadline(),
                             self.fencing.next_deadline(), self.lookout.next_deadline())
                 if t is not None]
        times += self.fails.deadlines() + self.failover.deadlines(self._now)
        return min(times) if times else None
