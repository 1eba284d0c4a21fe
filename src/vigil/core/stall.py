"""Did this daemon stop running for a while (frozen by SIGSTOP, starved)? Sans-IO.

Heartbeats go out every keepalive, so a long gap since the last one means the daemon was not
running. Then what it did not hear meanwhile says nothing about the peer, and what it did hear
is old news queued in its sockets (the peer may have taken over since): for one deadtime it
declares nobody dead (membership's `grace`) and starts nothing (`holding`). The node checks
at every input, before anything else (`notice`), because after a SIGCONT the queued frames
and the overdue timers come in no fixed order. Once the hold is over, the groups may come
home (`tick`). A new life after the guard's goodbye holds starts the same way (`hold_for`).
"""

from __future__ import annotations

from typing import Iterable

from vigil.core.agenda import Agenda
from vigil.core.membership import Membership
from vigil.core.notes import Level, Note
from vigil.model import Timings


class Stall:
    def __init__(self, timings: Timings, membership: Membership, agenda: Agenda) -> None:
        self.timings, self._membership, self._agenda = timings, membership, agenda
        self.last_sent: float | None = None  # when the node last sent a heartbeat
        self.hold_until = 0.0  # start nothing before this (0: no hold)

    def sent(self, now: float) -> None:
        self.last_sent = now

    def check(self, now: float) -> float | None:
        """The gap, when the daemon did not run for longer than it may (and starts are held
        for one deadtime from now); None otherwise."""
        t = self.timings
        if self.last_sent is None or now - self.last_sent <= max(2 * t.keepalive,
                                                                 t.deadtime / 2):
            return None
        gap = now - self.last_sent
        self.last_sent = now
        self.hold_until = now + t.deadtime
        return gap

    def notice(self, now: float) -> list[Note]:
        """Check for a stall as of `now` (`check`); after one, membership judges nobody for
        a deadtime, and our heartbeat goes out at once."""
        gap = self.check(now)
        if gap is None:
            return []
        self._membership.grace(now)
        self._agenda.send = True
        return [Note(Level.WARNING, f"this daemon did not run for {gap * 1000:.0f} ms (frozen "
                                    f"or starved): judging nothing and starting nothing for "
                                    f"one deadtime")]

    def tick(self, now: float, groups: Iterable[str]) -> None:
        """Once the hold is over, this node may run `groups` again: they may come home."""
        if self.ended(now):
            self._agenda.send = True
            self._agenda.failback.update(groups)

    def hold_for(self, now: float, seconds: float) -> None:
        self.hold_until = max(self.hold_until, now + seconds)

    def holding(self, now: float | None = None) -> bool:
        """Starts are held (now, or at all when `now` is None)."""
        return bool(self.hold_until) and (now is None or now < self.hold_until)

    def ended(self, now: float) -> bool:
        """The hold is over as of `now`: True once, then no hold."""
        if self.hold_until and now >= self.hold_until:
            self.hold_until = 0.0
            return True
        return False

    def next_deadline(self) -> float | None:
        return self.hold_until or None
