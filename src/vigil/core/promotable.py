"""The instances of the promotable groups, as the node knows them: this node's own (what
the daemon last found, `set_mine`) and the peer's (in its latest report). Sans-IO.

Eligibility asks `refusal` (replica/promotion.may_hold: may this node hold the group at
all?); the promoting start asks `ready` (may_promote, with the instance examined just
before). Both say why in words, and the last refusal is kept for the status (`why_not`).

An operator's `vigil switchover GROUP --force` (`force`) lifts the data checks of this
node's next promotion of GROUP (Patroni's maximum_lag_on_failover, the synchronous
contract), never the identity ones, and only while the peer is dead: the peer's return
ends it, and so does the promotion.
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
        self.forced: set[str] = set()  # an operator forced the next promotion here

    def __contains__(self, group: str) -> bool:
        return group in self.policies

    def set_mine(self, group: str, replica: Replica) -> bool:
        """This node's instance as just examined; True when that is news."""
        if self.mine.get(group) == replica:
            return False
        self.mine[group] = replica
        if replica.role == "primary":
            self.forced.discard(group)  # done
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
                     self.policies[group], self._forced(group))
        if v.ok:
            self.why_not.pop(group, None)
            return None
        self.why_not[group] = v.why
        return v.why

    def ready(self, group: str, force: bool = False) -> Verdict:
        """Whether this node may promote its instance now (the start of the group)."""
        return may_promote(self.me, self.mine.get(group), self.theirs(group),
                           not self._peer.dead(), self.policies[group],
                           force or self._forced(group))

    def _forced(self, group: str) -> bool:
        return group in self.forced and self._peer.dead()

    def force(self, group: str) -> tuple[str | None, str]:
        """An operator forces the next promotion of `group` here: (an error, changing
        nothing) or (None, the refusal it overrides)."""
        if group not in self.policies:
            return f"group {group} is not promotable", ""
        if not self._peer.dead():
            return (f"{self._peer.name} is alive: `vigil switchover` hands the primary over "
                    f"without losing data; --force is for a dead primary"), ""
        mine, theirs = self.mine.get(group), self.theirs(group)
        if mine is not None and mine.role == "primary":
            return f"this node's instance of {group} is already primary", ""
        policy = self.policies[group]
        if (plain := may_hold(self.me, mine, theirs, False, policy)).ok:
            return f"nothing to force: this node may promote {group} ({plain.why or 'ok'})", ""
        if not (forced := may_hold(self.me, mine, theirs, False, policy, True)).ok:
            return f"cannot be forced: {forced.why}", ""
        self.forced.add(group)
        return None, plain.why

    def reports(self) -> tuple[tuple[str, Replica], ...]:
        """What this node's heartbeats say of its instances."""
        return tuple((g, r) for g, r in self.mine.items() if g in self.policies)

    def add(self, group: str, policy: Policy) -> None:
        self.policies[group] = policy

    def forget(self, group: str) -> None:
        for d in (self.policies, self.mine, self.why_not):
            d.pop(group, None)
        self.forced.discard(group)
