"""Whether this node may run a group: one pure function over the facts, and the failure
counts that are some of them. Sans-IO.

A node is eligible for a group unless something keeps it off (`kept_off`): its resources
cannot work here (the health checks), a start failed here (until `vigil resource cleanup`),
monitors failed migration_threshold times within failure_timeout, or a hard or fatal failure
(`FailCounts`), the peer reaches more ping nodes (ipfail), the witness's lease lapsed while
the peer is dead or counts us dead, or this node lost its side of the disk heartbeat while
the peer is dead. A new reason is a new member of `Why` and a new field of `Facts`, here,
not a new clause somewhere in the node.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Why(enum.Enum):
    UNHEALTHY = "its resources cannot work here"
    FAILED_START = "a start failed here"
    BANNED = "too many failures here"
    PING = "the peer reaches more ping nodes"
    LEASE = "no lease of the witness"
    DISK = "the disk heartbeat is lost"


@dataclass(frozen=True, slots=True)
class Facts:
    healthy: bool
    failed_start: bool
    banned: bool
    ping_worse: bool
    lease_lapsed: bool
    disk_lost: bool


def kept_off(f: Facts) -> frozenset[Why]:
    """Everything that keeps this node off the group; empty: it is eligible."""
    return frozenset(w for w, on in ((Why.UNHEALTHY, not f.healthy),
                                     (Why.FAILED_START, f.failed_start),
                                     (Why.BANNED, f.banned), (Why.PING, f.ping_worse),
                                     (Why.LEASE, f.lease_lapsed), (Why.DISK, f.disk_lost))
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
