"""Look before taking an address: which groups must check that their addresses are free
before a takeover, and what the checks found. Sans-IO.

A peer that went silent without a goodbye is dead to us, but maybe not to the network: when
every vigil process on it died at once (`systemctl kill -s KILL vigil`, an OOM group kill,
`pkill -9 -f vigil`) nothing removed its addresses, and its host still answers for them; when
only the dedicated heartbeat cable is cut, the peer is alive and serving. Taking the address
then makes two owners. So, after such a death (deadtime or initdead, never after a goodbye or
once fencing confirmed the peer off), a takeover of a group with addresses waits for a
probe of each address (resources/conflict.py) to hear nobody. While another host answers,
the group stays where it is and the probe runs again every `retry`; once nobody answers, the
takeover goes on. Until a check has run, the reason is "checking"; after a failed one it
names the address and who answers it. An address that could not be probed (its interface
down, the socket failed) is never taken for one nobody answers: the group waits for a probe
that works.

One probe suffices for a group the peer was running when it went silent (the usual
failover: its addresses are still held there, or gone with the host). A group it was not
running yet (a hand-over in flight, a start after initdead) may be being started there right
now, by a peer that counts us dead too: such a group must be heard free twice, `retry`
apart, which is longer than a start takes to add an address.

The node's failover (failover.py) arms the lookout at the peer's death, clears it when the
peer comes back or leaves cleanly, and tells every decision what `blocks()` and `due()` say
(the policy turns due groups into Probe actions); the daemon runs them and hands the answers
to `found()`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Answer:
    """Another host answered for `address`, from hardware address `mac`."""

    address: str
    mac: str


@dataclass(frozen=True, slots=True)
class Unprobed:
    """`address` could not be probed (`why`: the interface is down, the socket failed...).
    Never taken for silence: the group waits, and the probe runs again."""

    address: str
    why: str


Result = Answer | Unprobed


@dataclass(slots=True)
class _Check:
    looks: int = 1  # free probes needed, `retry` apart (2: the peer may be starting it now)
    running: bool = False
    next_at: float = 0.0  # when a probe may run (again)
    answers: tuple[Result, ...] = ()
    since: float | None = None  # when the addresses were first found answered
    free: bool = False  # the latest probe heard nobody: the takeover may go on


class Lookout:
    def __init__(self, retry: float) -> None:
        self.retry = retry
        self._checks: dict[str, _Check] = {}

    def arm(self, groups: Iterable[str], twice: Iterable[str] = ()) -> None:
        """The peer died without a goodbye: check these groups' addresses before taking
        them; those in `twice` must be heard free twice, `retry` apart. A group already
        armed keeps what it found."""
        twice = set(twice)
        for g in groups:
            self._checks.setdefault(g, _Check(2 if g in twice else 1))

    def clear(self) -> None:
        """The peer is back, left cleanly, or was fenced: nothing to check."""
        self._checks.clear()

    def forget(self, group: str) -> None:
        self._checks.pop(group, None)

    def blocks(self, group: str) -> str | None:
        c = self._checks.get(group)
        if c is None or c.free:
            return None
        if not c.answers:
            return "checking that its addresses are free before taking it over"
        return "; ".join(f"{a.address} still answered by {a.mac}" if isinstance(a, Answer)
                         else f"cannot probe {a.address} ({a.why})" for a in c.answers)

    def due(self, group: str, now: float) -> bool:
        c = self._checks.get(group)
        return c is not None and not c.free and not c.running and now >= c.next_at

    def started(self, group: str) -> None:
        self._checks[group].running = True

    def found(self, group: str, answers: tuple[Result, ...], now: float) -> str | None:
        """What a probe of `group` heard: who answered, and the addresses it could not
        probe (both keep the group waiting). Returns a change to log: the first time
        addresses are answered (or unprobed), when that changes, and when all are free."""
        c = self._checks.get(group)
        if c is None:
            return None  # cleared meanwhile: the peer came back
        c.running = False
        c.next_at = now + self.retry
        before, c.answers = c.answers, answers
        if not answers:
            c.looks -= 1
            c.free = c.looks <= 0
            return None if not before or not c.free else "free now"
        if c.since is None:
            c.since = now
        if any(isinstance(a, Unprobed) for a in answers):
            return None if before == answers else "unprobed"
        return None if before == answers else "answered"

    def next_deadline(self) -> float | None:
        """When a group found answered, or not yet looked at enough, may be probed again (a
        first probe needs no timer: the decision that wants it comes with the death)."""
        times = [c.next_at for c in self._checks.values()
                 if c.next_at and not c.free and not c.running]
        return min(times) if times else None

    def status(self, group: str, now: float) -> dict[str, object] | None:
        """For `vigil status`: the addresses answered elsewhere and for how long."""
        c = self._checks.get(group)
        if c is None or c.free or not c.answers:
            return None
        return {"answered": [{"address": a.address, "mac": a.mac} for a in c.answers
                             if isinstance(a, Answer)],
                "unprobed": [{"address": a.address, "why": a.why} for a in c.answers
                             if isinstance(a, Unprobed)],
                "since_ms": round((now - (c.since or now)) * 1000)}
