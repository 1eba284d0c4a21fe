"""One-shot changes of assignments: an operator's standby, takeover and move (Heartbeat's
hb_standby and hb_takeover, Pacemaker's `crm resource move`; `request` names them), and
failback on an edge.
Pure, like decide.py, over the same View.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from vigil.model import Cluster
from vigil.policy.decide import View, peer_up
from vigil.wire.messages import Assignment, NodeStatus


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


def request(v: View, cluster: Cluster, what: str, which: str = "all", group: str = "",
            to: str = "") -> RequestResult:
    """An operator's request by name (`vigil standby|takeover|move`): "move" moves `group`
    (to `to`); "standby" and "takeover" take `which` groups: all, local or foreign."""
    if what != "move" and which not in ("all", "local", "foreign"):
        return RequestResult({}, "", f"expected all, local or foreign, not {which!r}")
    if what == "move":
        return move(v, cluster, group, to)
    if what == "standby":
        return standby(v, cluster, which)
    if what == "takeover":
        return takeover(v, cluster, which)
    raise ValueError(what)


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
    if not peer_up(v):
        return RequestResult({}, "", f"{v.peer.name} is not up; standby would leave "
                                     f"{', '.join(mine)} without a node")
    report = v.report
    assert report is not None  # peer_up

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
        if (only is not None and g.name not in only) or g.promotable:
            continue  # a promotable group stays with its primary (as Patroni's): moving it
            # back is a switchover's write outage, for `vigil move` to ask
        a = v.assignments[g.name]
        report = v.report.group(g.name) if v.report else None
        # Not while starts are held after a stall: the peer would stop the group for a
        # node that cannot start it yet (the torture saw 300 ms outages). The end of the
        # hold is an edge of its own (node.tick).
        if g.home == v.me and a.owner != v.me and v.groups[g.name].eligible and v.may_start:
            changes[g.name] = Assignment(a.epoch + 1, v.me, v.me)
        elif g.home == v.peer.name and a.owner == v.me and report is not None \
                and report.eligible and peer_up(v):
            changes[g.name] = Assignment(a.epoch + 1, v.me, g.home)
    return RequestResult(changes, f"failing back {', '.join(changes)}" if changes else "")
