"""Whether this node may run a group: one pure function over the facts, the failure counts
that are some of them, and `Eligibility`, which gathers the facts and keeps the verdicts.
Sans-IO.

A node is eligible for a group unless something keeps it off (`kept_off`): its resources
cannot work here (the health checks), a start failed here (until `vigil resource cleanup`),
monitors failed migration_threshold times within failure_timeout, or a hard or fatal failure
(`FailCounts`), the peer reaches more ping nodes (ipfail), the witness's lease lapsed while
the peer is dead or counts us dead, or this node lost its side of the disk heartbeat while
the peer is dead. A new reason is a new member of `Why` and a new field of `Facts`, here,
not a new clause somewhere in the node.

`Eligibility` judges a group anew (`update`) whenever one of its facts may have changed; the
node calls it after every input that may change one. A group this node may run again may go
home (the agenda's failback); one it must stop for want of a lease or of its disk heartbeat
is said loudly.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import AbstractSet, Iterable, Mapping

from vigil.core.agenda import Agenda
from vigil.core.notes import Level, Note
from vigil.core.peer import Peer
from vigil.core.promotable import Promotable
from vigil.core.witness import WitnessClient
from vigil.model import Cluster, Group
from vigil.wire.messages import ACTIVE_STATES, GroupState


class Why(enum.Enum):
    UNHEALTHY = "its resources cannot work here"
    FAILED_START = "a start failed here"
    BANNED = "too many failures here"
    PING = "the peer reaches more ping nodes"
    LEASE = "no lease of the witness"
    DISK = "the disk heartbeat is lost"
    DATA = "its data may not be promoted here"


@dataclass(frozen=True, slots=True)
class Facts:
    healthy: bool
    failed_start: bool
    banned: bool
    ping_worse: bool
    lease_lapsed: bool
    disk_lost: bool
    data_refused: bool = False  # a promotable group's instance (core/promotable.py)


def kept_off(f: Facts) -> frozenset[Why]:
    """Everything that keeps this node off the group; empty: it is eligible."""
    return frozenset(w for w, on in ((Why.UNHEALTHY, not f.healthy),
                                     (Why.FAILED_START, f.failed_start),
                                     (Why.BANNED, f.banned), (Why.PING, f.ping_worse),
                                     (Why.LEASE, f.lease_lapsed), (Why.DISK, f.disk_lost),
                                     (Why.DATA, f.data_refused))
                     if on)


class FailCounts:
    """Monitor failures per group (their times, forgotten after the group's
    failure_timeout), groups kept off after too many (until when; inf: until a cleanup),
    and failed starts (why)."""

    def __init__(self) -> None:
        self.failures: dict[str, list[float]] = {}
        self.banned: dict[str, float] = {}
        self.failed_start: dict[str, str] = {}

    def count(self, group: str, timeout: float, now: float) -> int:
        times = self.failures.setdefault(group, [])
        if timeout:
            times[:] = [t for t in times if now - t < timeout]
        return len(times)

    def failed(self, group: str, timeout: float, now: float) -> int:
        """One more monitor failure; the count within `timeout`."""
        self.failures.setdefault(group, []).append(now)
        return self.count(group, timeout, now)

    def ban(self, group: str, timeout: float, now: float) -> None:
        self.banned[group] = now + timeout if timeout else math.inf

    def expired(self, now: float) -> list[str]:
        """The groups whose ban ended by `now` (lifted)."""
        done = [g for g, until in self.banned.items() if now >= until]
        for g in done:
            del self.banned[g]
        return done

    def clear(self, group: str) -> None:
        self.failed_start.pop(group, None)
        self.failures[group] = []
        self.banned.pop(group, None)

    def forget(self, group: str) -> None:
        for d in (self.failures, self.banned, self.failed_start):
            d.pop(group, None)

    def deadlines(self) -> list[float]:
        return [t for t in self.banned.values() if t != math.inf]


class Eligibility:
    """The verdict per group (`eligible`) and the facts of this node's own: its health checks
    (`healthy`), failures (`fails`), the ping nodes it reaches (`ping_count`) and the carrier
    of its side of each link (`set_carrier`). What the peer and the witness say is asked of them
    (`peer`, `witness`); `local` is the groups' states here."""

    def __init__(self, groups: Iterable[str], local: Mapping[str, GroupState], peer: Peer,
                 witness: WitnessClient | None, agenda: Agenda, pings: int = 0,
                 disk_links: AbstractSet[str] = frozenset(),
                 promotable: Promotable | None = None) -> None:
        """`pings`: how many ping nodes are configured; `disk_links`: the names of the disk
        heartbeat links; `promotable`: the instances of the promotable groups."""
        self.eligible = {g: True for g in groups}
        self.healthy = {g: True for g in self.eligible}
        self.fails = FailCounts()  # monitor failures, bans, failed starts
        self.ping_count: int | None = None  # ping nodes we reach (None: unknown / none)
        self._local, self._peer, self._witness, self._agenda = local, peer, witness, agenda
        self._pings = pings
        self._disk_links = disk_links
        self._promotable = promotable
        self._carrier: dict[str, bool] = {}  # our side of each link: carrier up?

    def may_run(self, group: str) -> bool:
        """Nothing about this node itself keeps it off the group (its interfaces, a failed
        start, too many failures)."""
        return self.healthy[group] and group not in self.fails.failed_start and \
            group not in self.fails.banned

    def update(self, group: str, now: float) -> list[Note]:
        """Judge `group` anew (`now`: the latest time any input carried)."""
        why = kept_off(Facts(
            healthy=self.healthy[group], failed_start=group in self.fails.failed_start,
            banned=group in self.fails.banned,
            ping_worse=bool(self._pings) and self._peer.ping_worse(self.ping_count),
            lease_lapsed=self._lease_lapsed(group, now), disk_lost=self._disk_lost(),
            data_refused=self._promotable is not None and
            self._promotable.refusal(group) is not None))
        new = not why
        if new == self.eligible[group]:
            return []
        self.eligible[group] = new
        self._agenda.send = True
        peer = self._peer
        if new:
            self._agenda.failback.add(group)
        elif Why.LEASE in why and self._local[group] in ACTIVE_STATES:
            dead = ("counts this node dead" if not peer.unheard() else
                    "is dead" if peer.dead() else "is not heard on any link")
            return [Note(Level.ERROR, f"{peer.name} {dead} and this node holds no lease of "
                                      f"the witness on group {group}: stopping it, so that "
                                      f"it never runs on both nodes")]
        elif Why.DATA in why and self._promotable is not None:
            return [Note(Level.WARNING, f"this node may not hold group {group}: "
                                        f"{self._promotable.why_not.get(group, '')}")]
        elif Why.DISK in why and self._local[group] in ACTIVE_STATES:
            return [Note(Level.ERROR, f"{peer.name} is dead and this node lost its disk "
                                      f"heartbeat, where a poison pill would reach it: "
                                      f"stopping group {group}")]
        return []

    def update_all(self, now: float) -> list[Note]:
        return [n for g in self.eligible for n in self.update(g, now)]

    def _lease_lapsed(self, group: str, now: float) -> bool:
        """With a witness, a node whose peer is dead, or counts it dead (a one-way cut: it
        may take the group over as soon as the witness lets it), keeps a group only under
        its lease. (Taking one over is for the takeover's gates: this node stays eligible.)"""
        peer, w = self._peer, self._witness
        if w is None or self._local[group] not in ACTIVE_STATES or w.holds(group, now) or \
                not w.answering(now) or peer.left_without(group, now):
            return False
        return peer.unheard() or (peer.report is not None and not peer.report.hears_you)

    def _disk_lost(self) -> bool:
        """Our side of a disk link fails while the peer is dead: the peer may be alive,
        may count us dead and may poison us through the disk, which we cannot read. Stop."""
        return bool(self._disk_links) and self._peer.unheard() and \
            not all(self._carrier.get(n, True) for n in self._disk_links)

    # --- the facts of this node's own ------------------------------------------------------

    def set_health(self, group: str, healthy: bool, now: float) -> list[Note]:
        """Whether this node's resources for `group` can work (interfaces up)."""
        was = self.eligible[group]
        self.healthy[group] = healthy
        self.update(group, now)
        if self.eligible[group] != was:
            state = "can" if self.eligible[group] else "cannot"
            return [Note(Level.WARNING, f"this node {state} run group {group} now")]
        return []

    def set_ping(self, count: int | None, now: float) -> list[Note]:
        """How many ping nodes this node reaches now."""
        if count == self.ping_count:
            return []
        self.ping_count = count
        self._agenda.send = True
        before = dict(self.eligible)
        notes = [Note(Level.INFO if count else Level.WARNING,
                      f"ping nodes reachable: {count} of {self._pings}")]
        notes += self.update_all(now)
        if self.eligible != before and not all(self.eligible.values()):
            notes.append(Note(Level.WARNING, f"{self._peer.name} reaches more ping nodes "
                                             f"than this node: handing over what it can run"))
        return notes

    def set_carrier(self, link: str, up: bool, now: float) -> list[Note]:
        """Our side of `link` lost or regained carrier; no notes when that is no news."""
        if self._carrier.get(link, True) == up:
            return []
        self._carrier[link] = up
        self._agenda.send = True
        if up:
            note = Note(Level.INFO, f"our side of link {link} is up again")
        else:
            note = Note(Level.WARNING, f"our side of link {link} is down: its silence says "
                                       f"nothing about {self._peer.name}")
        return [note] + self.update_all(now)

    def start_failed(self, group: str, detail: str, now: float) -> None:
        """Keep off the group so that the peer may take it (policy hands it over when the
        peer is eligible) until an operator clears the failure."""
        self.fails.failed_start[group] = detail
        self.update(group, now)

    def monitor_failed(self, g: Group, index: int, kind: str, detail: str,
                       now: float) -> tuple[list[Note], bool]:
        """A monitor of resource `index` of `g` failed (see Node.resource_failed). The notes,
        and True when the group must move off this node (banned: `update` it), False when
        the resource is to be restarted in place."""
        what = g.resources[index].name
        count = self.fails.failed(g.name, g.policy.failure_timeout, now)
        threshold = g.policy.migration_threshold
        if kind in ("hard", "fatal") or count >= threshold:
            timeout = g.policy.failure_timeout
            self.fails.ban(g.name, timeout, now)
            why = (f"it cannot run on this node ({kind})" if kind in ("hard", "fatal") else
                   f"{count} failures here reach migration_threshold {threshold}")
            until = (f"for {timeout:g} s (failure_timeout)" if timeout else
                     "until `vigil resource cleanup " + g.name + "`")
            return [Note(Level.ERROR, f"{what} failed: {detail}; {why}: moving group "
                                      f"{g.name} off this node {until}")], True
        return [Note(Level.WARNING, f"{what} failed: {detail}; restarting it in place "
                                    f"(failure {count} of {threshold} on this node)")], False

    def fail_count(self, cluster: Cluster, group: str, now: float) -> int:
        g = next((x for x in cluster.groups if x.name == group), None)
        timeout = g.policy.failure_timeout if g is not None else 0.0  # removed by a reload
        return self.fails.count(group, timeout, now)

    def expire(self, cluster: Cluster, now: float) -> list[Note]:
        """Lift the bans whose failure_timeout passed by `now`."""
        notes = []
        for group in self.fails.expired(now):
            self.fail_count(cluster, group, now)
            notes.append(Note(Level.INFO, f"group {group}: failure_timeout passed; this node "
                                          f"may run it again"))
        return notes

    def cleanup(self, group: str, now: float) -> None:
        """An operator cleared the group's failures."""
        self.fails.clear(group)
        self.update(group, now)
        self._agenda.send = True

    def add(self, group: str) -> None:
        """A group added by a reload."""
        self.eligible[group] = self.healthy[group] = True

    def forget(self, group: str) -> None:
        """A group removed by a reload."""
        self.fails.forget(group)
        self.eligible.pop(group, None)
        self.healthy.pop(group, None)
