"""Who should run each group, and what this node must do about it. Pure functions.

The state is an *assignment* per group (owner, epoch, by), gossiped in every heartbeat; the
larger assignment wins on both nodes (`merge`), so the nodes converge whatever order frames
arrive in. Assignments change only here: on a request (standby, takeover), on failover, on
failback and on a node that can no longer hold a group. Every change raises the epoch.

Safety rule (DESIGN.md rule 1, "one owner"). A node starts a group only when the group is
assigned to it and either
  (a) the peer is alive, its latest report says it hears us (a report made while it counted
      us dead may be followed by its takeover at any moment) and *acknowledges that same
      assignment* with the group STOPPED; once the peer has adopted an assignment naming us it never starts the
      group until a larger assignment names it, which we must acknowledge in turn, or
  (b) the peer is dead (deadtime or initdead passed, and the caller does not block the
      takeover: where fencing or a witness is configured they decide it; a disk heartbeat is
      one more link, so a peer still writing to the disk is not dead), or it left cleanly
      with the group reported STOPPED.
A node stops a group as soon as it is assigned elsewhere or the node cannot hold it. So,
while both nodes can talk, the group is never active (starting, running or stopping) on both.
tests/unit/test_policy_sim.py checks this over random interleavings of frames and requests.

Nothing here reads a clock, a socket or a file: the caller passes the views in. The
requests (standby, takeover, move) and failback are in requests.py; the actions in
actions.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from vigil.core.membership import Liveness, NodeView
from vigil.model import Cluster
from vigil.policy.actions import Action, Probe, Recover, Start, Stop
from vigil.wire.messages import (ACTIVE_STATES, Assignment, GroupReport, GroupState, Heartbeat,
                                 NodeStatus)


def initial_assignment(home: str) -> Assignment:
    """What both nodes assume before anyone decided anything: the group's home node."""
    return Assignment(0, "", home)


def merge(mine: Assignment, theirs: Assignment) -> Assignment:
    return max(mine, theirs)


@dataclass(frozen=True, slots=True)
class LocalGroup:
    state: GroupState
    eligible: bool  # this node could run it (its interfaces are up, no start failure)


@dataclass(frozen=True, slots=True)
class View:
    """Everything a decision depends on, as one snapshot."""

    me: str
    status: NodeStatus  # STARTING: still reconciling; LEAVING: shutting down
    groups: Mapping[str, LocalGroup]
    assignments: Mapping[str, Assignment]
    peer: NodeView
    report: Heartbeat | None  # the peer's latest heartbeat (of its current life)
    # group -> why it may not be taken from a dead peer yet (fencing, the witness's lease):
    # neither reassigned nor started.
    takeover_blocked: Mapping[str, str] = field(default_factory=dict)
    # group -> why a takeover, once decided, may not start yet (the peer may still be
    # stopping it: see core/failover.py, "settle"). The new assignment is published meanwhile.
    start_blocked: Mapping[str, str] = field(default_factory=dict)
    may_start: bool = True  # False for a while after this daemon was frozen (core/stall.py)
    # group -> the first resource to restart in place (a monitor failed: core/underway.py)
    recover: Mapping[str, int] = field(default_factory=dict)
    # group -> why the look before taking holds it, for groups whose next look is due now
    # (core/lookout.py): where that is why the group waits, the decision asks for a Probe.
    looks_due: Mapping[str, str] = field(default_factory=dict)
    # The torture test's deliberately broken build (issue 5): start a group the peer has
    # acknowledged without waiting for it to be released. Only from the daemon's
    # VIGIL_UNSAFE_SKIP_RELEASE_WAIT=1, which it logs loudly; never in production.
    skip_release_wait: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    assignments: dict[str, Assignment] = field(default_factory=dict)  # changed ones only
    actions: tuple[Action, ...] = ()
    reasons: tuple[str, ...] = ()  # one per assignment change, for the log
    waiting: dict[str, str] = field(default_factory=dict)  # group -> why it is not started


def peer_up(v: View) -> bool:
    return v.peer.liveness is Liveness.UP and v.report is not None and \
        v.report.status is NodeStatus.UP


def _can_hold(v: View, group: str) -> bool:
    return v.status is NodeStatus.UP and v.groups[group].eligible


def decide(v: View, cluster: Cluster) -> Decision:
    if v.status is NodeStatus.STARTING:
        return Decision(waiting={g.name: "probing local resources" for g in cluster.groups})
    if v.peer.liveness is Liveness.UNKNOWN:
        # Start nothing and move nothing before we know whether the peer lives: what we
        # found running after a restart may be exactly what must keep running. A restart in
        # place still happens: it moves nothing. But a group this node cannot hold stops
        # now, as the safety rule says: with a witness, one whose lease the witness did not
        # grant back may be granted to the peer, which counts us dead, long before our
        # initdead ends.
        return Decision(actions=tuple(
            act for g in cluster.groups
            if (act := _recover(v, g.name) or _cannot_hold(v, g.name)) is not None),
                        waiting={g.name: f"waiting for {v.peer.name} (initdead)"
                                 for g in cluster.groups})
    peer = v.peer.name
    changes: dict[str, Assignment] = {}
    reasons: list[str] = []
    actions: list[Action] = []
    waiting: dict[str, str] = {}
    for g in cluster.groups:
        a = v.assignments[g.name]
        local = v.groups[g.name]
        report = v.report.group(g.name) if v.report else None
        can_hold = _can_hold(v, g.name)
        peer_dead = v.peer.liveness is Liveness.DEAD

        blocked = v.takeover_blocked.get(g.name)
        if a.owner == peer and peer_dead and can_hold and blocked:
            waiting[g.name] = blocked
        elif a.owner == peer and peer_dead and can_hold:
            if v.peer.left and report is not None and report.state is not GroupState.STOPPED:
                waiting[g.name] = (f"{peer} left with {g.name} {report.state.value}; "
                                   f"not taking it over")
            else:
                a = Assignment(a.epoch + 1, v.me, v.me)
                reasons.append(f"taking over group {g.name}: {peer} is dead")
        elif a.owner == v.me and not can_hold and peer_up(v) and report is not None \
                and report.eligible:
            why = "shutting down" if v.status is NodeStatus.LEAVING else "cannot run it here"
            a = Assignment(a.epoch + 1, v.me, peer)
            reasons.append(f"handing group {g.name} to {peer}: {why}")
        if a != v.assignments[g.name]:
            changes[g.name] = a

        if a.owner == v.me and can_hold:
            if local.state is GroupState.STOPPED:
                why_not = _why_not_start(v, g.name, a, report, peer_dead) if v.may_start else \
                    "just resumed after a stall: waiting one deadtime for fresh news"
                if why_not is None:
                    actions.append(Start(g.name, f"from {peer} ("
                                         + ("it is dead)" if peer_dead else "it released it)"),
                                         peer_dead))
                else:
                    waiting[g.name] = why_not
            elif (r := _recover(v, g.name, a)) is not None:
                actions.append(r)
        elif local.state is GroupState.RUNNING:
            actions.append(Stop(g.name, f"assigned to {a.owner}" if a.owner != v.me
                                else "cannot hold it"))
        if g.name in waiting and waiting[g.name] == v.looks_due.get(g.name):
            actions.append(Probe(g.name))
    return Decision(changes, tuple(actions), tuple(reasons), waiting)


def _recover(v: View, group: str, a: Assignment | None = None) -> Recover | None:
    """A restart in place of a group that runs here, stays here and had a monitor fail."""
    a = v.assignments[group] if a is None else a
    if group not in v.recover or v.groups[group].state is not GroupState.RUNNING or \
            a.owner != v.me or not v.groups[group].eligible:
        return None
    return Recover(group, v.recover[group], "a resource failed its monitor")


def _cannot_hold(v: View, group: str) -> Stop | None:
    """A group that runs here though this node may not hold it."""
    if v.groups[group].state is GroupState.RUNNING and not v.groups[group].eligible:
        return Stop(group, "cannot hold it")
    return None


def _why_not_start(v: View, group: str, a: Assignment, report: GroupReport | None,
                   peer_dead: bool) -> str | None:
    peer = v.peer.name
    if peer_dead:
        blocked = v.takeover_blocked.get(group) or v.start_blocked.get(group)
        if blocked:
            return blocked
        if v.peer.left and report is not None and report.state is not GroupState.STOPPED:
            return f"{peer} left with it {report.state.value}"
        return None
    if not peer_up(v):
        return f"waiting for {peer} to come up"
    if report is None:
        return f"{peer} does not report this group (configuration differs?)"
    assert v.report is not None  # peer_up
    if not v.report.hears_you:
        return f"waiting for {peer} to hear this node (it may still count it dead)"
    if report.assignment != a:
        return f"waiting for {peer} to acknowledge the assignment"
    if report.state is not GroupState.STOPPED and not v.skip_release_wait:
        return f"waiting for {peer} to release it ({report.state.value})"
    return None


def conflict_resolved(before: GroupState | None, after: GroupState, local: GroupState) -> bool:
    """The peer just stopped a group it had active while we ran it (a healed partition): our
    announcements must go out again, or clients keep the loser's MAC until their neighbour
    entries expire (PLATFORM-NOTES: 30-45 s)."""
    return local is GroupState.RUNNING and before in ACTIVE_STATES and \
        after in (GroupState.STOPPED, GroupState.FAILED)
