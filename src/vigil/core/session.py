"""Which of the peer's heartbeats prove it alive now: a challenge and its answer. Sans-IO.

A heartbeat is authentic (HMAC) and new (the replay window, wire/replay.py), but neither says
*when* it was made. A frame captured earlier and sent again is authentic, and to a node that
restarted since it is new too: issue 12 saw a restarted n1 count a dead n2 up for as long as
20 s old captures of n2 were replayed to it, and leave the floating address on no node. So the
nodes answer each other's frames:

- every heartbeat carries `made`, the sender's monotonic clock in ms, and `echo`: the newest
  frame (generation, seq) it has received from the receiver, and how long before `made` that
  frame arrived (`held_ms`);
- the receiver remembers when it sent each of its recent heartbeats. A frame that echoes our
  seq S, sent at our time s, was made no earlier than s + held (our clock), less the one-way
  delay of S: that ties the sender's clock to ours, as NTP does, with a bound
  `lo <= our time - their time` for that sender generation (`_Bound`);
- a frame proves its sender alive only when its age by that bound, now - (made + lo), is at most
  `max_age` (half a deadtime; a whole one on a disk or serial link, whose frames wait for a
  timer or their airtime), plus 0.1 % of the time since the bound was measured, for clocks
  that drift apart (NTP slews at most 0.05 %) while no new echo comes, as in a one-way cut; and
  it proves the sender alive *when it was made*, not when it arrived (membership counts
  deadtime from there), so a frame held back buys its sender no time;
- a sender generation gets a bound only from a frame that echoes a seq of this node's current
  process: frames captured before it started prove nothing, whatever they echo.

A frame that proves nothing (`Verdict.UNBOUND` or `Verdict.OLD`) is still echoed: the echo
carries the newest (generation, seq) received, so a peer that has just started is proven one
round trip later, once it has heard one of our frames and answered it. Its content is not
believed (frames.py drops it, counted as "unverified"). Only a goodbye (a LEAVING report) of a
bound generation counts at any age: it says that life is over, which is never false later.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from vigil.model import Timings
from vigil.wire.messages import MS_MAX, Echo

DRIFT = 0.001  # how fast two monotonic clocks may drift apart (s/s), with a margin
SENT_KEPT = 256  # heartbeats whose send time we remember (an echo of an older one is useless)


class Verdict(enum.Enum):
    LIVE = "live"  # young enough: the sender was alive within max_age
    OLD = "old"  # made too long ago (held back, replayed, or queued while we were frozen)
    UNBOUND = "unbound"  # no echo of this life yet for that generation: its age is unknown


@dataclass(frozen=True, slots=True)
class _Bound:
    seq: int  # our seq the bound was measured from (the newest one echoed)
    lo: float  # our time minus theirs is at least this (seconds)
    at: float  # when we sent that seq (drift grows from there)


class Session:
    def __init__(self, timings: Timings, now: float) -> None:
        self.max_age = timings.deadtime / 2
        # A disk slot or a serial line delays every frame by up to a keepalive or two (the
        # slot is read on a timer; a frame's airtime): there a frame may be as old as can
        # still count at all. (Only our own sockets lead to those links: an attacker on the
        # network reaches none of them.)
        self.max_age_slow = timings.deadtime
        self._origin = now  # `made` counts from here: small numbers on the wire
        self._sent: deque[tuple[int, float]] = deque(maxlen=SENT_KEPT)  # (seq, when)
        self._heard: tuple[int, int, float] | None = None  # (gen, seq, when) newest received
        self._bounds: dict[int, _Bound] = {}  # sender generation -> its clock bound

    # --- our side --------------------------------------------------------------------------

    def made(self, now: float) -> int:
        return min(MS_MAX, max(0, round((now - self._origin) * 1000)))

    def echo(self, now: float) -> Echo | None:
        if self._heard is None:
            return None
        gen, seq, when = self._heard
        return Echo(gen, seq, min(MS_MAX, max(0, round((now - when) * 1000))))

    def sent(self, seq: int, now: float) -> None:
        """We sent heartbeat `seq` now (on any link)."""
        self._sent.append((seq, now))

    def heard(self, generation: int, seq: int, now: float) -> None:
        """An authentic frame that passed the replay window: echo it if it is the newest."""
        if self._heard is None or (generation, seq) > self._heard[:2]:
            self._heard = (generation, seq, now)

    # --- their side ------------------------------------------------------------------------

    def judge(self, generation: int, made: int, echo: Echo | None, my_generations: set[int],
              now: float, slow: bool = False) -> tuple[Verdict, float | None]:
        """How much a frame of the peer's `generation`, made at `made`, proves, and its age
        by the bound (None: unknown). `echo` counts only when it names one of this
        process's generations (`my_generations`). `slow`: it came on a disk or serial link."""
        if echo is not None and echo.generation in my_generations:
            self._measure(generation, made, echo)
        bound = self._bounds.get(generation)
        if bound is None:
            return Verdict.UNBOUND, None
        age = max(0.0, now - (made / 1000 + bound.lo))
        allowed = (self.max_age_slow if slow else self.max_age) + \
            DRIFT * max(0.0, now - bound.at)
        return (Verdict.LIVE if age <= allowed else Verdict.OLD), age

    def _measure(self, generation: int, made: int, echo: Echo) -> None:
        old = self._bounds.get(generation)
        if old is not None and echo.seq <= old.seq:
            return  # the newest echo gives the bound least exposed to drift
        when = self._sent_at(echo.seq)
        if when is None:
            return  # too old to be remembered, or never ours: it bounds nothing
        # They received our seq at (their clock) made - held, after we sent it at `when`.
        self._bounds[generation] = _Bound(echo.seq, when - (made - echo.held_ms) / 1000, when)
        for g in sorted(self._bounds)[:-2]:  # the current life and the one before suffice
            del self._bounds[g]

    def _sent_at(self, seq: int) -> float | None:
        for s, when in reversed(self._sent):
            if s == seq:
                return when
            if s < seq:
                return None
        return None
