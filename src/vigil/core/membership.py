"""Who is alive, per link and per node, from heartbeats and the clock. Sans-IO.

Feed it every authenticated heartbeat (`on_heartbeat`) and call `on_tick` at `next_deadline()`
(or any time later); both take `now` in monotonic seconds and return events in the order
they happened. The rules are Heartbeat's:

- a link is up while heartbeats arrive on it, dead after `deadtime` without one;
- a node is dead only when every link to it is dead, or when it said it was leaving;
- a link whose interface is down *on our side* says nothing about the peer: silence on it is
  no evidence, so a node cut off by its own cable never declares a healthy peer dead (and
  never takes over from it). A link becomes evidence again `deadtime` after our side of it
  comes back up, giving the peer that long to be heard;
- a heartbeat arriving more than `warntime` after the previous one on that link is late;
- after our own start, a peer never heard is declared dead only once `initdead` has passed;
  a link never heard from a peer that came up is dead a deadtime after it came up;
- a new generation from a node means it restarted: it is up again, with a fresh state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Sequence, Union

from vigil.model import Timings


class Liveness(str, enum.Enum):
    UNKNOWN = "unknown"  # not heard yet, initdead not over
    UP = "up"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class LinkUp:
    node: str
    link: str


@dataclass(frozen=True, slots=True)
class LinkDead:
    node: str
    link: str
    silent: float  # seconds since the last heartbeat on it


@dataclass(frozen=True, slots=True)
class NodeUp:
    node: str
    generation: int
    restarted: bool  # a new generation replaced one we knew: the peer lost its state


@dataclass(frozen=True, slots=True)
class NodeDead:
    node: str
    reason: str  # "deadtime", "initdead" or "shutdown"


@dataclass(frozen=True, slots=True)
class HeartbeatLate:
    node: str
    link: str
    gap: float


Event = Union[LinkUp, LinkDead, NodeUp, NodeDead, HeartbeatLate]


@dataclass(slots=True)
class _Link:
    status: Liveness = Liveness.UNKNOWN
    last: float | None = None
    local_up: bool = True
    evidence_from: float = 0.0  # silence counts as evidence only from this time on


@dataclass(slots=True)
class _Peer:
    links: dict[str, _Link]
    liveness: Liveness = Liveness.UNKNOWN
    generation: int | None = None
    left_generation: int | None = None  # the life that said goodbye
    dead_reason: str | None = None
    up_since: float | None = None  # when it first came up (in our life; never reset)


@dataclass(frozen=True, slots=True)
class LinkView:
    name: str
    status: Liveness
    last: float | None
    local_up: bool = True


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    liveness: Liveness
    generation: int | None
    left: bool  # dead because it left cleanly
    links: tuple[LinkView, ...]
    last: float | None = field(default=None)


class Membership:
    def __init__(self, peers: Sequence[str], links: Sequence[str], timings: Timings,
                 now: float) -> None:
        self._t = timings
        self._started = now
        self._peers = {p: _Peer({name: _Link() for name in links}) for p in peers}
        self._now = now  # the latest time any input carried

    def set_local(self, link: str, up: bool, now: float) -> None:
        """Our own side of `link` (its interface's carrier) went down or came back."""
        self._now = max(self._now, now)
        for p in self._peers.values():
            l = p.links[link]
            if up and not l.local_up:
                l.evidence_from = now + self._t.deadtime
            l.local_up = up

    def grace(self, now: float) -> None:
        """We ourselves were not running (frozen, starved): what we did not hear meanwhile is
        no evidence. Every link counts as evidence again only `deadtime` from now."""
        self._now = max(self._now, now)
        for p in self._peers.values():
            for l in p.links.values():
                l.evidence_from = max(l.evidence_from, now + self._t.deadtime)

    def _evidence(self, p: _Peer, now: float) -> bool:
        """Does the silence of p's links say anything? Only on a link that works here."""
        return any(l.local_up and now >= l.evidence_from for l in p.links.values())

    def on_heartbeat(self, node: str, link: str, generation: int, now: float,
                     leaving: bool = False, made: float | None = None) -> list[Event]:
        """`made`: when the frame was made by our clock (session.py), if earlier than now:
        it proves the node alive then, and deadtime counts from there."""
        self._now = max(self._now, now)
        at = now if made is None else min(made, now)
        p = self._peers[node]
        if generation == p.left_generation:
            return []  # stragglers of a life that already said goodbye
        if not leaving and at + self._t.deadtime <= now:
            return []  # made a deadtime ago or more: it proves nothing about now
        events: list[Event] = []
        restarted = p.generation is not None and generation != p.generation
        l = p.links[link]
        if l.status is Liveness.UP and l.last is not None and not restarted:
            gap = at - l.last
            if gap > self._t.warntime:
                events.append(HeartbeatLate(node, link, gap))
        l.last = at if l.last is None or restarted else max(l.last, at)
        if l.status is not Liveness.UP:
            l.status = Liveness.UP
            events.append(LinkUp(node, link))
        p.generation = generation
        if leaving:
            p.left_generation = generation
            # Also when deadtime got there first: it did leave, and said what it left
            # running (nothing, from a guard: daemon/guard.py), which is news to act on.
            if p.liveness is not Liveness.DEAD or p.dead_reason != "shutdown":
                p.liveness = Liveness.DEAD
                events.append(NodeDead(node, "shutdown"))
            p.dead_reason = "shutdown"
            return events
        if p.liveness is not Liveness.UP or restarted:
            p.liveness = Liveness.UP
            p.dead_reason = None
            if p.up_since is None:
                p.up_since = at
            events.append(NodeUp(node, generation, restarted))
        return events

    def on_tick(self, now: float) -> list[Event]:
        events: list[Event] = []
        self._now = max(self._now, now)
        # Compared in the very form next_deadline() computes, so that a tick at exactly
        # next_deadline() fires: `now - last >= deadtime` can be false there by rounding.
        initdead_over = now >= self._started + self._t.initdead
        for name, p in self._peers.items():
            for link_name, l in p.links.items():
                if l.evidence_from and now >= l.evidence_from:
                    l.evidence_from = 0.0  # the grace after our side came back is over
                if l.status is Liveness.UP and l.last is not None and \
                        now >= l.last + self._t.deadtime:
                    l.status = Liveness.DEAD
                    events.append(LinkDead(name, link_name, now - l.last))
                elif l.status is Liveness.UNKNOWN and (initdead_over or
                                                       self._had_its_chance(p, now)):
                    l.status = Liveness.DEAD
            all_dead = all(l.status is Liveness.DEAD for l in p.links.values()) and \
                self._evidence(p, now)
            if p.liveness is Liveness.UP and all_dead:
                p.liveness = Liveness.DEAD
                p.dead_reason = "deadtime"
                events.append(NodeDead(name, "deadtime"))
            elif p.liveness is Liveness.UNKNOWN and initdead_over and self._evidence(p, now):
                p.liveness = Liveness.DEAD
                p.dead_reason = "initdead"
                events.append(NodeDead(name, "initdead"))
        return events

    def _had_its_chance(self, p: _Peer, now: float) -> bool:
        """A link never heard from a node that came up: silent for a deadtime since it first
        did, it is as dead as a link heard once (or the node would outlive its last working
        link until initdead)."""
        return p.up_since is not None and now >= p.up_since + self._t.deadtime

    def next_deadline(self) -> float | None:
        """The earliest time at which on_tick could change something."""
        times: list[float] = []
        for p in self._peers.values():
            initdead = self._started + self._t.initdead
            if p.liveness is Liveness.UNKNOWN and (initdead > self._now or
                                                   self._evidence(p, self._now)):
                # (Past initdead without evidence, only set_local() can change anything.)
                times.append(initdead)
            for l in p.links.values():
                if l.status is Liveness.UP and l.last is not None:
                    times.append(l.last + self._t.deadtime)
                elif l.status is Liveness.UNKNOWN:
                    times.append(self._started + self._t.initdead)
                    if p.up_since is not None:
                        times.append(p.up_since + self._t.deadtime)
                if l.local_up and l.evidence_from > 0:
                    times.append(l.evidence_from)
        return min(times) if times else None

    def view(self, node: str) -> NodeView:
        p = self._peers[node]
        links = tuple(LinkView(n, l.status, l.last, l.local_up) for n, l in p.links.items())
        lasts = [l.last for l in p.links.values() if l.last is not None]
        return NodeView(node, p.liveness, p.generation, p.dead_reason == "shutdown", links,
                        max(lasts) if lasts else None)
