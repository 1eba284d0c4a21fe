"""The instances of the promotable groups, as the node knows them: this node's own (what
the daemon last found, `set_mine`) and the peer's (in its latest report). Sans-IO.

Eligibility asks `refusal` (replica/promotion.may_hold: may this node hold the group at
all?); the promoting start asks `ready` (may_promote, with the instance examined just
before). Both say why in words, and the last refusal is kept for the status (`why_not`).
"""

from __future__ import annotations

from typing import Iterable

from vigil.core.peer import Peer
from vigil.replica.promotion import Policy, Replica, Verdict, may_hold, may_promote


class Promotable:
    def __init__(self, me: str, peer: Peer, groups: Iterable[tuple[str, Policy]]) -> None:
        self.me, self._peer = me, peer
        self.policies = dict(groups)
        self.mine: dict[str, Replica] = {}
        self.why_not: dict[str, str] = {}  # group -> why this node may not hold it now

    def __contains__(self, group: str) -> bool:
        return group in self.policies

    def set_mine(self, group: str, replica: Replica) -> bool:
        """This node's instance as just examined; True when that is news."""
        if self.mine.get(group) == replica:
            return False
        self.mine[group] = replica
        return True

    def theirs(self, group: str) -> Replica | None:
        """The peer's instance in its latest report (None: no report of it, this life)."""
        report = self._peer.report
        return None if report is None else report.replica(group)

    def refusal(self, group: str) -> str | None:
        """Why this node may not hold `group` (None: it may, or it is not promotable)."""
        if group not in self.policies:
            return None
        v = may_hold(self.me, self.mine.get(group), self.theirs(group), not self._peer.dead(),
                     self.policies[group])
        if v.ok:
            self.why_not.pop(group, None)
            return None
        self.why_not[group] = v.why
        return v.why

    def ready(self, group: str, force: bool = False) -> Verdict:
        """Whether this node may promote its instance now (the start of the group)."""
        return may_promote(self.me, self.mine.get(group), self.theirs(group),
                           not self._peer.dead(), self.policies[group], force)

    def reports(self) -> tuple[tuple[str, Replica], ...]:
        """What this node's heartbeats say of its instances."""
        return tuple((g, r) for g, r in self.mine.items() if g in self.policies)

    def add(self, group: str, policy: Policy) -> None:
        self.policies[group] = policy

    def forget(self, group: str) -> None:
        for d in (self.policies, self.mine, self.why_not):
            d.pop(group, None)
