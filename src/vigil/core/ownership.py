"""Who should run each group: the assignments this node holds, and the one seam every change
to them goes through. Sans-IO.

An assignment (wire/messages.py: epoch, by, owner) names the node that should run a group;
every change raises its epoch. The policy proposes changes (policy/decide.py, requests.py),
and the node applies them only through an `Ownership`: `assign` for its own decisions,
`heard` for the records of the other nodes. `Gossip` is the backend of two nodes: every
heartbeat carries the sender's assignments, and on both nodes the larger wins (policy.merge),
so they converge whatever order frames arrive in. A backend that keeps the records elsewhere
(etcd, a later issue) is a second implementation of `Ownership`, not a change to the node.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Protocol

from vigil import policy
from vigil.wire.messages import Assignment, GroupReport


class Ownership(Protocol):
    # group -> its assignment as this node knows it (what the policy's View reads)
    assignments: dict[str, Assignment]

    def assign(self, changes: Mapping[str, Assignment]) -> bool:
        """This node's decision (a policy result); True when an assignment changed."""
        ...

    def heard(self, reports: Iterable[GroupReport]) -> bool:
        """Another node's records of its groups; True when an assignment changed."""
        ...

    def add(self, group: str, home: str) -> None:
        """A group added by a reload, assigned to its home until someone decides."""
        ...

    def forget(self, group: str) -> None:
        """A group removed by a reload."""
        ...


class Gossip:
    """Ownership by gossip between two nodes: the larger assignment wins."""

    def __init__(self, homes: Iterable[tuple[str, str]]) -> None:
        """`homes`: (group, its home node) for every group."""
        self.assignments = {g: policy.initial_assignment(home) for g, home in homes}

    def assign(self, changes: Mapping[str, Assignment]) -> bool:
        changed = False
        for name, a in changes.items():
            if a != self.assignments[name]:
                self.assignments[name] = a
                changed = True
        return changed

    def heard(self, reports: Iterable[GroupReport]) -> bool:
        changes = {}
        for r in reports:
            mine = self.assignments.get(r.name)
            if mine is None:
                continue  # a group this node does not know (a reload on one side only)
            merged = policy.merge(mine, r.assignment)
            if merged != mine:
                changes[r.name] = merged
        return self.assign(changes)

    def add(self, group: str, home: str) -> None:
        self.assignments[group] = policy.initial_assignment(home)

    def forget(self, group: str) -> None:
        self.assignments.pop(group, None)
