"""Transitions as events: what notify hooks, the HTTP API's /events and the metrics see.

Sans-IO. The daemon takes a `Snapshot` of what an operator cares about after every input
and `diff`s it with the previous one. Deriving events from state, rather than from the code
paths that change it, is what makes each transition reported exactly once: a group that
reaches `running` by a start, a recovery or a probe is `group_started` once, whichever path
got it there, and a path that changes nothing reports nothing.

Kinds (subject in brackets):
  node_up, node_dead            [the peer]   its liveness became up / dead
  link_up, link_dead            [link name]  a heartbeat link to the peer
  group_starting, group_started, group_stopping, group_stopped, group_failed  [group]
  fenced, fence_failed          [the peer]   the fence agent's result
  address_answered, address_free  [group]    a takeover waits: another host still answers
                                             the group's addresses (lookout.py) / no more
  became_owner, became_standby  [this node]  it runs at least one group / none (Heartbeat's
                                             'active' and 'standby', keepalived's MASTER and
                                             BACKUP)
  real_server_up, real_server_down  [service server]  the balancer's checks changed their
                                             mind (rise/fall); detail: the last check's
                                             result. Published by the balancer, not by diff.
  promoted, demoted             [group]      a promotable group's instance here became the
                                             primary / was stopped as one (its detail: where
                                             it stood). Published by the keeper (replicas.py).
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("node_up", "node_dead", "link_up", "link_dead", "group_starting", "group_started",
         "group_stopping", "group_stopped", "group_failed", "fenced", "fence_failed",
         "became_owner", "became_standby", "address_answered", "address_free",
         "real_server_up", "real_server_down", "promoted", "demoted")

# A group's local state -> the event that entering it is. Entering "unknown" (never) or
# leaving "unknown" for "stopped" (the probe at start found nothing) reports nothing.
_GROUP_KINDS = {"starting": "group_starting", "running": "group_started",
                "stopping": "group_stopping", "stopped": "group_stopped",
                "failed": "group_failed"}


@dataclass(frozen=True, slots=True)
class Snapshot:
    me: str
    peer: str
    peer_state: str  # membership.Liveness value: unknown, up, dead
    links: tuple[tuple[str, str], ...]  # (link, state) for the peer's links, config order
    groups: tuple[tuple[str, str], ...]  # (group, local GroupState value), config order
    fence: str | None = None  # core/fencing.py FenceState value: None, needed, manual, running, failed, done
    fence_detail: str = ""
    answered: tuple[tuple[str, str], ...] = ()  # (group, what answers its addresses)


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    subject: str
    detail: str = ""


def running(s: Snapshot) -> list[str]:
    """The groups this node serves: the owner role is serving at least one of them."""
    return [g for g, st in s.groups if st == "running"]


def diff(old: Snapshot, new: Snapshot) -> list[Change]:
    """The transitions from `old` to `new`, in a fixed order: the peer, its links, the
    groups, their addresses answered elsewhere, fencing, then this node's role (which
    follows from the groups)."""
    out: list[Change] = []
    if new.peer_state != old.peer_state and new.peer_state in ("up", "dead"):
        out.append(Change(f"node_{new.peer_state}", new.peer))
    was = dict(old.links)
    for name, st in new.links:
        if st != was.get(name, "unknown") and st in ("up", "dead"):
            out.append(Change(f"link_{st}", name, f"{new.peer}:{name}"))
    was = dict(old.groups)
    for name, st in new.groups:
        before = was.get(name, "unknown")
        if st == before or st not in _GROUP_KINDS:
            continue
        if st == "stopped" and before == "unknown":
            continue  # probed at start and found absent: nothing was stopped
        out.append(Change(_GROUP_KINDS[st], name, f"{before} -> {st}"))
    was = dict(old.answered)
    for name, why in new.answered:
        if why != was.get(name):
            out.append(Change("address_answered", name, why))
    now_answered = dict(new.answered)
    for name, why in old.answered:
        if name not in now_answered:
            out.append(Change("address_free", name, why))
    if new.fence != old.fence:
        if new.fence == "done":
            out.append(Change("fenced", new.peer, new.fence_detail))
        elif new.fence == "failed":
            out.append(Change("fence_failed", new.peer, new.fence_detail))
    held_before, held = running(old), running(new)
    if bool(held) != bool(held_before):
        if held:
            out.append(Change("became_owner", new.me, ", ".join(held)))
        else:
            out.append(Change("became_standby", new.me, ""))
    return out
