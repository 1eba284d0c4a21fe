"""One cluster node's whole protocol state, sans-IO: frames in, frames and actions out.

The daemon owns sockets, timers and resource agents; this class owns everything they feed:
the replay guard, membership, the peer's latest report, the group assignments and the local
group states. Inputs (`receive`, `tick`, `request`, `probed`, `finished`, `set_eligible`,
`leave`) take `now` as an argument and return `Note`s for the log; `step` runs the policy and
returns what the daemon must do. Tests drive two of these over a fake network
(tests/unit/test_node_sim.py) exactly as the daemon drives one over UDP.

Local group states move only here: STOPPED -> STARTING (step returns Start) -> RUNNING or,
on failure, STOPPED with the group marked ineligible; RUNNING -> STOPPING (step returns Stop)
-> STOPPED, or FAILED when the stop failed (then the group is blocked: never started
elsewhere while this node lives, because its report says FAILED).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Sequence

from vigil import policy
from vigil.membership import (Event, HeartbeatLate, LinkDead, LinkUp, Liveness, Membership,
                              NodeDead, NodeUp)
from vigil.model import Cluster
from vigil.policy import Action, Start, Stop
from vigil.wire import frame as wire
from vigil.wire.messages import (ACTIVE_STATES, Assignment, GroupReport, GroupState, Heartbeat,
                                 NodeStatus, parse, serialize)
from vigil.wire.replay import ReplayGuard


class Level(enum.IntEnum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


@dataclass(frozen=True, slots=True)
class Note:
    level: Level
    text: str


@dataclass(frozen=True, slots=True)
class Step:
    actions: tuple[Action, ...]
    send: bool  # our state changed: send a heartbeat on every link now
    notes: tuple[Note, ...]
    reannounce: tuple[str, ...] = ()  # groups whose addresses must be announced again


class Node:
    def __init__(self, cluster: Cluster, me: str, key: bytes, generation: int,
                 link_names: Sequence[str], now: float) -> None:
        self.cluster = cluster
        self.me = me
        self.key = key
        self.generation = generation
        self.link_names = tuple(link_names)
        self.peer = cluster.peers(me)[0].name
        self.status = NodeStatus.STARTING
        self.seq = 0
        self.membership = Membership([self.peer], self.link_names, cluster.timings, now)
        self.guard = ReplayGuard()
        self.report: Heartbeat | None = None
        self._report_key: tuple[int, int] = (-1, -1)  # (generation, seq) of self.report
        self.assignments = {g.name: policy.initial_assignment(g.home) for g in cluster.groups}
        self.local = {g.name: GroupState.UNKNOWN for g in cluster.groups}
        self.eligible = {g.name: True for g in cluster.groups}
        self.healthy = {g.name: True for g in cluster.groups}
        self.failed_start: dict[str, str] = {}
        self.waiting: dict[str, str] = {}
        self.rejected: dict[str, int] = {r.value: 0 for r in wire.RejectReason}
        self.received = 0
        self._dirty = True
        self._reannounce: set[str] = set()
        self._failback_due: set[str] = set()  # groups that may go home (see policy.failback)
        self._link_local: dict[str, bool] = {}  # our side of each link: carrier up?
        self._last_sent: float | None = None  # when we last sent a heartbeat
        self._hold_starts_until = 0.0  # after a stall: start nothing before this
        self._later: list[Note] = []  # notes from frame(), logged with the next step
        self.ping_count: int | None = None  # ping nodes we reach (None: unknown / none)
        # Fencing of the peer after an unclean death: None (not needed), "needed", "running",
        # "manual" (waiting for an operator), "failed" (retried at _fence_retry), "done".
        self.fence_state: str | None = None
        self.fence_detail = ""
        self._fence_retry = 0.0

    # --- inputs ----------------------------------------------------------------------------

    def receive(self, data: bytes, link: int, now: float) -> list[Note]:
        """One datagram from link `link`. Bad input is counted and changes nothing else."""
        return self._check_stall(now) + self._receive(data, link, now)

    def _receive(self, data: bytes, link: int, now: float) -> list[Note]:
        got = wire.decode(data, self.key)
        if isinstance(got, wire.Rejected):
            return self._reject(got.reason, link, got.detail)
        f = got
        if f.cluster != self.cluster.name:
            return self._reject(wire.RejectReason.WRONG_CLUSTER, link, f.cluster)
        if f.sender == self.me:
            if f.generation == self.generation:
                return []  # our own broadcast looped back
            # Another host runs under our name: both would take every group. Say it loudly.
            self.rejected[wire.RejectReason.DUPLICATE_NODE.value] += 1
            return [Note(Level.ERROR, f"another host sends heartbeats as {self.me} (generation "
                                      f"{f.generation}) on {self.link_names[link]}: two nodes "
                                      f"share one name; check --node and the configuration")]
        if f.sender != self.peer:
            return self._reject(wire.RejectReason.UNKNOWN_SENDER, link, f.sender)
        if f.kind is not wire.FrameKind.HEARTBEAT or not 0 <= link < len(self.link_names):
            return self._reject(wire.RejectReason.GARBLED, link, "unexpected kind")
        verdict = self.guard.check(f.sender, f.generation, f.seq)
        if verdict is not None:
            return self._reject(verdict, link, f"gen {f.generation} seq {f.seq}")
        hb = parse(f.payload)
        if hb is None:
            return self._reject(wire.RejectReason.GARBLED, link, "payload")
        self.guard.accept(f.sender, f.generation, f.seq)
        self.received += 1
        key = (f.generation, f.seq)
        if key > self._report_key:
            self._adopt_report(hb, key)
        events = self.membership.on_heartbeat(f.sender, self.link_names[link], f.generation, now,
                                              leaving=hb.status is NodeStatus.LEAVING)
        return self._on_events(events)

    def tick(self, now: float) -> list[Note]:
        stall = self._check_stall(now)
        if self.fence_state == "failed" and now >= self._fence_retry:
            self.fence_state = "needed"  # try the agent again
        if self._hold_starts_until and now >= self._hold_starts_until:
            self._hold_starts_until = 0.0  # the deadtime after a stall is over:
            self._dirty = True  # we may run groups again, so they may come home
            self._failback_due.update(self.assignments)
        return stall + self._on_events(self.membership.on_tick(now))

    def probed(self, states: dict[str, GroupState]) -> list[Note]:
        """The start-up probe found these states; from now on this node takes part."""
        notes = []
        for name, st in states.items():
            self.local[name] = st
            if st is not GroupState.STOPPED:
                notes.append(Note(Level.WARNING, f"group {name} found {st.value} at start: "
                                                 f"adopting it, not starting it again"))
        self.status = NodeStatus.UP
        self._dirty = True
        return notes

    def finished(self, group: str, result: GroupState, detail: str = "",
                 ms: float | None = None) -> list[Note]:
        """The daemon finished the Start or Stop that step() returned for `group`.

        After a Start: RUNNING (ok), STOPPED (failed, and what had started was stopped again)
        or FAILED (failed, and cleaning up failed too). After a Stop: STOPPED or FAILED."""
        st = self.local[group]
        assert st in (GroupState.STARTING, GroupState.STOPPING), f"{group} is {st}"
        assert result in (GroupState.RUNNING, GroupState.STOPPED, GroupState.FAILED)
        assert not (st is GroupState.STOPPING and result is GroupState.RUNNING)
        self._dirty = True
        self.local[group] = result
        if st is GroupState.STARTING and result is not GroupState.RUNNING:
            # Keep off the group so that the peer may take it (policy hands it over when the
            # peer is eligible) until an operator clears the failure.
            self.failed_start[group] = detail
            self._update_eligible(group)
        verb = "start" if st is GroupState.STARTING else "stop"
        took = "" if ms is None else f" in {ms:.0f} ms"
        if result is GroupState.RUNNING:
            return [Note(Level.INFO, f"group {group} acquired{took}")]
        if result is GroupState.STOPPED and st is GroupState.STOPPING:
            return [Note(Level.INFO, f"group {group} released{took}")]
        if result is GroupState.STOPPED:
            return [Note(Level.ERROR, f"group {group} failed to start: {detail}")]
        return [Note(Level.ERROR, f"group {group} failed to {verb}: {detail}; it stays blocked "
                                  f"on this node (its resources may still be held)")]

    def set_eligible(self, group: str, healthy: bool) -> list[Note]:
        """Whether this node's resources for `group` can work (interfaces up)."""
        was = self.eligible[group]
        self.healthy[group] = healthy
        self._update_eligible(group)
        if self.eligible[group] != was:
            state = "can" if self.eligible[group] else "cannot"
            return [Note(Level.WARNING, f"this node {state} run group {group} now")]
        return []

    def _update_eligible(self, group: str) -> None:
        new = self.healthy[group] and group not in self.failed_start and not self._ping_worse()
        if new != self.eligible[group]:
            self.eligible[group] = new
            self._dirty = True
            if new:
                self._failback_due.add(group)

    def set_ping(self, count: int | None) -> list[Note]:
        """How many ping nodes this node reaches now (daemon/ping.py)."""
        if count == self.ping_count:
            return []
        self.ping_count = count
        self._dirty = True
        before = dict(self.eligible)
        self._update_all_eligible()
        notes = [Note(Level.INFO if count else Level.WARNING,
                      f"ping nodes reachable: {count} of {len(self.cluster.ping)}")]
        if self.eligible != before and not all(self.eligible.values()):
            notes.append(Note(Level.WARNING, f"{self.peer} reaches more ping nodes than this "
                                             f"node: handing over what it can run"))
        return notes

    def _ping_worse(self) -> bool:
        """ipfail: the peer is up and reaches more ping nodes than we do."""
        if not self.cluster.ping or self.ping_count is None or self.report is None or \
                self.report.ping is None:
            return False
        if self.membership.view(self.peer).liveness is not Liveness.UP:
            return False
        return self.report.ping > self.ping_count

    def _update_all_eligible(self) -> None:
        for g in self.eligible:
            self._update_eligible(g)

    def set_link_local(self, link: int, up: bool, now: float) -> list[Note]:
        """Our own interface of `link` lost or regained carrier (see membership)."""
        name = self.link_names[link]
        if self._link_local.get(name, True) == up:
            return []
        self._link_local[name] = up
        self.membership.set_local(name, up, now)
        self._dirty = True
        if up:
            return [Note(Level.INFO, f"our side of link {name} is up again")]
        return [Note(Level.WARNING, f"our side of link {name} is down: its silence says "
                                    f"nothing about {self.peer}")]

    def fence_started(self) -> float | None:
        """The daemon asks whether to run the fence agent now; marks it running and returns
        how long to wait first (the fence race: see model.Fencing.delay), or None."""
        if self.fence_state != "needed":
            return None
        self.fence_state = "running"
        f = self.cluster.fencing
        assert f is not None
        peer_served = self.report is not None and any(
            r.state in ACTIVE_STATES for r in self.report.groups)
        i_serve = bool(self.active_groups())
        return f.delay if peer_served and not i_serve else 0.0

    def fence_result(self, ok: bool, detail: str, now: float) -> list[Note]:
        if self.fence_state != "running":
            return []  # the peer came back meanwhile
        self._dirty = True
        if ok:
            self.fence_state, self.fence_detail = "done", detail
            return [Note(Level.WARNING, f"{self.peer} fenced: {detail}".rstrip(": "))]
        f = self.cluster.fencing
        assert f is not None
        self.fence_state, self.fence_detail = "failed", detail
        self._fence_retry = now + f.retry_interval
        then = ("taking over anyway (on_failure = takeover)" if f.on_failure == "takeover"
                else f"its groups stay down; retrying in {f.retry_interval:g} s")
        return [Note(Level.ERROR, f"FENCING {self.peer} FAILED: {detail}; {then}")]

    def fence_confirm(self, node: str) -> str | None:
        """An operator says `node` is off. Returns an error, or None when accepted."""
        if node != self.peer:
            return f"{node} is not the peer of this node ({self.peer})"
        if self.fence_state in (None, "done"):
            return f"{node} does not need fencing now"
        self.fence_state, self.fence_detail = "done", "confirmed by an operator"
        self._dirty = True
        return None

    def _takeover_allowed(self) -> bool:
        f = self.cluster.fencing
        if f is None or self.fence_state is None:
            return True
        return self.fence_state == "done" or (self.fence_state == "failed" and
                                              f.on_failure == "takeover")

    def cleanup(self, group: str) -> bool:
        """An operator cleared the group's failures. True when the caller must probe the
        group again (a failed stop: only a probe can tell what is still there)."""
        self.failed_start.pop(group, None)
        self._update_eligible(group)
        self._dirty = True
        return self.local[group] is GroupState.FAILED

    def reprobed(self, group: str, found: GroupState, why: str = "cleaned up") -> list[Note]:
        """What a probe found after `cleanup` or after the guard stopped the group; the normal
        rules take it from there. Only a settled state is replaced (not an action under way)."""
        assert found in (GroupState.RUNNING, GroupState.STOPPED)
        if self.local[group] not in (GroupState.FAILED, GroupState.RUNNING):
            return []
        self.local[group] = found
        self._dirty = True
        return [Note(Level.WARNING, f"group {group} {why}: probe found it {found.value}")]

    def active_groups(self) -> list[str]:
        """Groups that may hold resources here: what the guard must stop if we die."""
        return [g for g, s in self.local.items()
                if s in ACTIVE_STATES or s is GroupState.FAILED]

    def _check_stall(self, now: float) -> list[Note]:
        """Did this daemon not run for a while (frozen by SIGSTOP, starved)? Heartbeats go out
        every keepalive, so a long gap since the last one means we were not running. Then
        what we did not hear meanwhile says nothing about the peer, and what we did hear is
        old news queued in our sockets (the peer may have taken over since): for one
        deadtime, declare nobody dead and start nothing. Checked at every input, before
        anything else, because after a SIGCONT the queued frames and the overdue timers
        come in no fixed order."""
        t = self.cluster.timings
        if self._last_sent is None or now - self._last_sent <= max(2 * t.keepalive,
                                                                   t.deadtime / 2):
            return []
        gap = now - self._last_sent
        self._last_sent = now
        self.membership.grace(now)
        self._hold_starts_until = now + t.deadtime
        self._dirty = True
        return [Note(Level.WARNING, f"this daemon did not run for {gap * 1000:.0f} ms (frozen "
                                    f"or starved): judging nothing and starting nothing for "
                                    f"one deadtime")]

    def request(self, what: str) -> policy.RequestResult:
        view = self.view()
        if what == "standby":
            result = policy.standby(view, self.cluster)
        elif what == "takeover":
            result = policy.takeover(view, self.cluster)
        else:
            raise ValueError(what)
        self._assign(result.assignments)
        return result

    def leave(self) -> None:
        """Begin a clean shutdown: release everything (handing it to the peer if it is up)."""
        self.status = NodeStatus.LEAVING
        self._dirty = True

    # --- outputs ---------------------------------------------------------------------------

    def step(self, now: float) -> Step:
        notes, self._later = self._later + self._check_stall(now), []
        if self._failback_due and self.status is NodeStatus.UP:
            result = policy.failback(self.view(), self.cluster, frozenset(self._failback_due))
            self._failback_due.clear()
            if result.assignments:
                notes.append(Note(Level.INFO, result.message))
                self._assign(result.assignments)
        decision = policy.decide(self.view(now), self.cluster)
        notes += [Note(Level.INFO, r) for r in decision.reasons]
        self._assign(decision.assignments)
        actions: list[Action] = []
        for act in decision.actions:
            if isinstance(act, Start):
                self.local[act.group] = GroupState.STARTING
                notes.append(Note(Level.INFO, f"acquiring group {act.group} {act.reason}"))
            elif isinstance(act, Stop):
                self.local[act.group] = GroupState.STOPPING
                notes.append(Note(Level.INFO, f"releasing group {act.group}: {act.reason}"))
            actions.append(act)
            self._dirty = True
        self.waiting = decision.waiting
        send, self._dirty = self._dirty, False
        reannounce, self._reannounce = tuple(sorted(self._reannounce)), set()
        return Step(tuple(actions), send or bool(actions), tuple(notes), reannounce)

    def heartbeat(self) -> Heartbeat:
        if self.status is NodeStatus.LEAVING and self.quiescent():
            status = NodeStatus.LEAVING
        else:
            # Until every group is released, a leaving node still reports itself up, or the
            # peer would stop listening to it before it reports the groups stopped.
            status = NodeStatus.UP if self.status is not NodeStatus.STARTING else self.status
        # While starts are held after a stall we cannot take a group: say so, or the peer
        # would hand one over (failback) only for it to wait out the hold, unserved.
        able = self.status is NodeStatus.UP and not self._hold_starts_until
        groups = tuple(
            GroupReport(g.name, self.local[g.name], self.assignments[g.name],
                        self.eligible[g.name] and able)
            for g in self.cluster.groups
        )
        return Heartbeat(status, groups, self.ping_count if self.cluster.ping else None)

    def frame(self, link: int, now: float) -> bytes:
        # The first heartbeat after a SIGCONT is often what runs first: notice the stall
        # before it hides it (its notes go out with the next step).
        self._later += self._check_stall(now)
        self._last_sent = now
        self.seq += 1
        payload = serialize(self.heartbeat())
        return wire.encode(wire.Frame(wire.FrameKind.HEARTBEAT, self.cluster.name, self.me,
                                      self.generation, self.seq, link, payload), self.key)

    def quiescent(self) -> bool:
        """No group is active here (all stopped or failed): a leaving node may go."""
        return all(s in (GroupState.STOPPED, GroupState.FAILED, GroupState.UNKNOWN)
                   for s in self.local.values())

    def view(self, now: float | None = None) -> policy.View:
        return policy.View(
            me=self.me, status=self.status,
            groups={n: policy.LocalGroup(s, self.eligible[n]) for n, s in self.local.items()},
            assignments=dict(self.assignments),
            peer=self.membership.view(self.peer), report=self.report,
            may_start=now is None or now >= self._hold_starts_until,
            takeover_allowed=self._takeover_allowed(),
        )

    def next_deadline(self) -> float | None:
        retry = self._fence_retry if self.fence_state == "failed" else None
        times = [t for t in (self.membership.next_deadline(), self._hold_starts_until or None,
                             retry) if t is not None]
        return min(times) if times else None

    # --- internals -------------------------------------------------------------------------

    def _reject(self, reason: wire.RejectReason, link: int, detail: str) -> list[Note]:
        self.rejected[reason.value] += 1
        name = self.link_names[link] if 0 <= link < len(self.link_names) else str(link)
        return [Note(Level.DEBUG, f"dropped frame on {name}: {reason.value} {detail}".rstrip())]

    def _adopt_report(self, hb: Heartbeat, key: tuple[int, int]) -> None:
        before = self.report if key[0] == self._report_key[0] else None
        self._report_key = key
        self.report = hb
        changes = {}
        for r in hb.groups:
            if r.name not in self.assignments:
                continue
            merged = policy.merge(self.assignments[r.name], r.assignment)
            if merged != self.assignments[r.name]:
                changes[r.name] = merged
            prev = before.group(r.name) if before else None
            if prev is not None and r.eligible and not prev.eligible:
                self._failback_due.add(r.name)  # the peer can run it again
            if policy.conflict_resolved(prev.state if prev else None, r.state,
                                        self.local[r.name]):
                self._reannounce.add(r.name)
        self._assign(changes)
        if self.cluster.ping:
            self._update_all_eligible()  # the peer's ping count may have changed

    def _assign(self, changes: dict[str, Assignment]) -> None:
        for name, a in changes.items():
            if a != self.assignments[name]:
                self.assignments[name] = a
                self._dirty = True

    def _on_events(self, events: list[Event]) -> list[Note]:
        notes: list[Note] = []
        for e in events:
            match e:
                case LinkUp(node, link):
                    notes.append(Note(Level.INFO, f"Link {node}:{link} up."))
                case LinkDead(node, link, silent):
                    notes.append(Note(Level.WARNING,
                                      f"Link {node}:{link} dead. silent_ms={silent * 1000:.0f}"))
                case HeartbeatLate(node, link, gap):
                    notes.append(Note(Level.WARNING, f"Late heartbeat from {node} on {link}: "
                                                     f"{gap * 1000:.0f} ms"))
                case NodeDead(node, reason):
                    notes.append(Note(Level.WARNING, f"node {node}: is dead ({reason})"))
                    self._update_all_eligible()  # a dead peer's ping count says nothing
                    f = self.cluster.fencing
                    if f is not None and reason != "shutdown":
                        self.fence_state = "manual" if f.agent == "manual" else "needed"
                        self.fence_detail = ""
                        notes.append(Note(Level.WARNING, (
                            f"{node} must be fenced before its groups are taken over" +
                            (f": waiting for `vigil fence confirm {node}`"
                             if f.agent == "manual" else f" ({f.agent} {f.action})"))))
                    self._dirty = True
                case NodeUp(node, generation, restarted):
                    self.fence_state, self.fence_detail = None, ""
                    self._update_all_eligible()
                    how = "restarted" if restarted else "up"
                    notes.append(Note(Level.INFO,
                                      f"node {node}: is {how} (generation {generation})"))
                    self._dirty = True
                    self._failback_due.update(self.assignments)
        return notes


def frame_problem(cluster: Cluster) -> str | None:
    """Why this cluster's heartbeats could not fit in one frame (None when they do).

    A heartbeat carries every group, so the number of groups and the length of their names
    are bounded by wire.MAX_FRAME; checked with the longest state and epoch a group can show.
    """
    worst = Assignment(2**62 - 1, max((n.name for n in cluster.nodes), key=len),
                       max((n.name for n in cluster.nodes), key=len))
    hb = Heartbeat(NodeStatus.LEAVING, tuple(
        GroupReport(g.name, GroupState.STOPPING, worst, True) for g in cluster.groups))
    payload = serialize(hb)
    try:
        wire.encode(wire.Frame(wire.FrameKind.HEARTBEAT, cluster.name, worst.owner, 2**64 - 1,
                               2**64 - 1, 255, payload), b"k")
    except ValueError as e:
        return (f"{len(cluster.groups)} groups do not fit in one heartbeat frame ({e}); "
                f"use fewer groups or shorter group names")
    return None
