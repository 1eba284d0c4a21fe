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

Nothing here reads a clock, a socket or a file: the caller passes the views in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Union

from vigil.membership import Liveness, NodeView
from vigil.model import Cluster
from vigil.wire.messages import (ACTIVE_STATES, Assignment, GroupReport, GroupState, Heartbeat,
                                 NodeStatus)


# A deliberately broken build for the torture test to catch (issue 5): start a group the
# peer has acknowledged without waiting for it to be released. Set only by daemon/main.py
# from VIGIL_UNSAFE_SKIP_RELEASE_WAIT=1, never in production: the daemon says so loudly.
UNSAFE_SKIP_RELEASE_WAIT = False


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
    # stopping it: see node.py, "settle"). The new assignment is published meanwhile.
    start_blocked: Mapping[str, str] = field(default_factory=dict)
    may_start: bool = True  # False for a while after this daemon was frozen (node.py)


@dataclass(frozen=True, slots=True)
class Start:
    group: str
    reason: str
    failover: bool = False  # taken from a dead peer (not handed over): the metrics' cause


@dataclass(frozen=True, slots=True)
class Stop:
    group: str
    reason: str


@dataclass(frozen=True, slots=True)
class Recover:
    """Restart a running group in place from resource `index` on (node.py decides it after a
    failed monitor): stop that resource and the later ones in reverse, start them in order."""

    group: str
    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class Probe:
    """Look before taking (lookout.py): ask the network whether the group's addresses still
    answer elsewhere. Changes nothing here; the answers decide whether the takeover goes on."""

    group: str
    reason: str = "its addresses may still be held by the peer's host"


Action = Union[Start, Stop, Recover, Probe]


@dataclass(frozen=True, slots=True)
class Decision:
    assignments: dict[str, Assignment] = field(default_factory=dict)  # changed ones only
    actions: tuple[Action, ...] = ()
    reasons: tuple[str, ...] = ()  # one per assignment change, for the log
    waiting: dict[str, str] = field(default_factory=dict)  # group -> why it is not started


def _peer_up(v: View) -> bool:
    return v.peer.liveness is Liveness.UP and v.report is not None and \
        v.report.status is NodeStatus.UP


def _can_hold(v: View, group: str) -> bool:
    return v.status is NodeStatus.UP and v.groups[group].eligible


def decide(v: View, cluster: Cluster) -> Decision:
    if v.status is NodeStatus.STARTING:
        return Decision(waiting={g.name: "probing local resources" for g in cluster.groups})
    if v.peer.liveness is Liveness.UNKNOWN:
        # Neither start nor stop anything before we know whether the peer lives: what we
        # found running after a restart may be exactly what must keep running.
        return Decision(waiting={g.name: f"waiting for {v.peer.name} (initdead)"
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
        elif a.owner == v.me and not can_hold and _peer_up(v) and report is not None \
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
        elif local.state is GroupState.RUNNING:
            actions.append(Stop(g.name, f"assigned to {a.owner}" if a.owner != v.me
                                else "cannot hold it"))
    return Decision(changes, tuple(actions), tuple(reasons), waiting)


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
    if not _peer_up(v):
        return f"waiting for {peer} to come up"
    if report is None:
        return f"{peer} does not report this group (configuration differs?)"
    assert v.report is not None  # _peer_up
    if not v.report.hears_you:
        return f"waiting for {peer} to hear this node (it may still count it dead)"
    if report.assignment != a:
        return f"waiting for {peer} to acknowledge the assignment"
    if report.state is not GroupState.STOPPED and not UNSAFE_SKIP_RELEASE_WAIT:
        return f"waiting for {peer} to release it ({report.state.value})"
    return None


# --- requests: one-shot changes of assignments -------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestResult:
    assignments: dict[str, Assignment]
    message: str
    error: str | None = None  # a refusal: nothing was changed


def _move(v: View, names: list[str], to: str, can_run: Callable[[str], bool]) -> \
        tuple[dict[str, Assignment], list[str]]:
    """Reassign `names` to `to` (one epoch up each), except those `to` cannot run."""
    changes = {n: Assignment(v.assignments[n].epoch + 1, v.me, to) for n in names if can_run(n)}
    return changes, [n for n in names if n not in changes]


def _which(v: View, cluster: Cluster, which: str) -> set[str]:
    """Heartbeat's hb_standby/hb_takeover argument: "all" groups, "local" ones (whose home is
    this node) or "foreign" ones (whose home is the peer)."""
    return {g.name for g in cluster.groups
            if which == "all" or (g.home == v.me) == (which == "local")}


def move(v: View, cluster: Cluster, group: str, to: str = "") -> RequestResult:
    """Move one group to a node (Pacemaker's `crm resource move`): a takeover of that group
    when `to` is this node, a standby of it when `to` is the peer; the same checks apply.
    Without `to`, to the node it is not assigned to."""
    names = [g.name for g in cluster.groups]
    if group not in names:
        return RequestResult({}, "", f"no group named {group!r} (groups: {', '.join(names)})")
    if not to:
        to = v.peer.name if v.assignments[group].owner == v.me else v.me
    if to not in (v.me, v.peer.name):
        return RequestResult({}, "", f"no node named {to!r} (nodes: {v.me}, {v.peer.name})")
    if v.assignments[group].owner == to:
        return RequestResult({}, f"group {group} is already assigned to {to}")
    if to == v.me:
        return takeover(v, cluster, chosen={group})
    return standby(v, cluster, chosen={group})


def standby(v: View, cluster: Cluster, which: str = "all",
            chosen: set[str] | None = None) -> RequestResult:
    """Hand every group this node is assigned to the peer (Heartbeat's hb_standby); only
    those in `chosen` when given."""
    chosen = _which(v, cluster, which) if chosen is None else chosen
    mine = [g.name for g in cluster.groups if v.assignments[g.name].owner == v.me and
            g.name in chosen]
    if not mine:
        return RequestResult({}, "this node holds no groups")
    if not _peer_up(v):
        return RequestResult({}, "", f"{v.peer.name} is not up; standby would leave "
                                     f"{', '.join(mine)} without a node")
    report = v.report
    assert report is not None  # _peer_up

    def peer_can(name: str) -> bool:
        r = report.group(name)
        return r is not None and r.eligible

    changes, refused = _move(v, mine, v.peer.name, peer_can)
    if not changes:
        return RequestResult({}, "", f"{v.peer.name} cannot run {', '.join(refused)}")
    msg = f"handing {', '.join(changes)} to {v.peer.name}"
    if refused:
        msg += f"; keeping {', '.join(refused)} ({v.peer.name} cannot run them)"
    return RequestResult(changes, msg)


def takeover(v: View, cluster: Cluster, which: str = "all",
             chosen: set[str] | None = None) -> RequestResult:
    """Take every group assigned to the peer (Heartbeat's hb_takeover); only those in
    `chosen` when given."""
    chosen = _which(v, cluster, which) if chosen is None else chosen
    theirs = [g.name for g in cluster.groups if v.assignments[g.name].owner != v.me and
              g.name in chosen]
    if not theirs:
        return RequestResult({}, "this node already holds every group")
    if v.status is not NodeStatus.UP:
        return RequestResult({}, "", "this node is not up")
    changes, refused = _move(v, theirs, v.me, lambda n: v.groups[n].eligible)
    if not changes:
        return RequestResult({}, "", f"this node cannot run {', '.join(refused)}")
    msg = f"taking over {', '.join(changes)}"
    if refused:
        msg += f"; not {', '.join(refused)} (this node cannot run them)"
    return RequestResult(changes, msg)


def failback(v: View, cluster: Cluster, only: frozenset[str] | None = None) -> RequestResult:
    """On the peer's (re)appearance, with auto_failback on: every group goes to its home node.

    Both sides apply it (the home node claims, the other hands back), because a one-way
    partition can make only one of them see the other return; when both do it at once they
    pick the same owner and the epoch tie-break makes them agree on the record. It is applied
    on edges only (the peer came up, a node became able to run a group: `only` names those
    groups), never continuously, so that `standby` on the home node sticks.
    """
    if not cluster.auto_failback or v.status is not NodeStatus.UP:
        return RequestResult({}, "")
    changes = {}
    for g in cluster.groups:
        if only is not None and g.name not in only:
            continue
        a = v.assignments[g.name]
        report = v.report.group(g.name) if v.report else None
        # Not while starts are held after a stall: the peer would stop the group for a
        # node that cannot start it yet (the torture saw 300 ms outages). The end of the
        # hold is an edge of its own (node.tick).
        if g.home == v.me and a.owner != v.me and v.groups[g.name].eligible and v.may_start:
            changes[g.name] = Assignment(a.epoch + 1, v.me, v.me)
        elif g.home == v.peer.name and a.owner == v.me and report is not None \
                and report.eligible and _peer_up(v):
            changes[g.name] = Assignment(a.epoch + 1, v.me, g.home)
    return RequestResult(changes, f"failing back {', '.join(changes)}" if changes else "")


def conflict_resolved(before: GroupState | None, after: GroupState, local: GroupState) -> bool:
    """The peer just stopped a group it had active while we ran it (a healed partition): our
    announcements must go out again, or clients keep the loser's MAC until their neighbour
    entries expire (PLATFORM-NOTES: 30-45 s)."""
    return local is GroupState.RUNNING and before in ACTIVE_STATES and \
        after in (GroupState.STOPPED, GroupState.FAILED)
