"""This node's frames: numbered and signed going out; verified, de-duplicated and judged coming
in. Sans-IO.

Outgoing, every frame of every kind (heartbeat, witness ask, poison pill) takes the next
`seq` of this life (`generation`). Incoming heartbeats pass, in order: the MAC and the layout
(wire/frame.py), the cluster's name, the sender (our own looped back, our own of an earlier
life, a second host under our name, a stranger), the replay window (wire/replay.py), the
payload, and last whether the frame proves its sender alive now (core/session.py). Every
drop is counted by reason (`rejected`) and said at DEBUG with a rate-limit key: nothing an
attacker sends can flood the log or change anything but a counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from vigil.core.notes import Level, Note
from vigil.core.session import Session, Verdict
from vigil.model import Timings
from vigil.wire import frame as wire
from vigil.wire.messages import Heartbeat, NodeStatus, parse
from vigil.wire.replay import ReplayGuard


@dataclass(frozen=True, slots=True)
class Heard:
    """A heartbeat that proves its sender alive: as of `made` (our clock), or at any age for
    a goodbye (`made` None)."""

    frame: wire.Frame
    heartbeat: Heartbeat
    made: float | None


@dataclass(frozen=True, slots=True)
class Dropped:
    notes: list[Note]
    unverified: int | None = None  # the generation of an authentic frame that proved nothing


class Frames:
    def __init__(self, cluster: str, me: str, peer: str, key: bytes, generation: int,
                 link_names: Sequence[str], timings: Timings, now: float) -> None:
        self.cluster, self.me, self.peer, self.key = cluster, me, peer, key
        self.generation = generation
        self.lives = [generation]  # and those after the guard said goodbye (new_life)
        self.link_names = tuple(link_names)
        self.seq = 0
        self.replay = ReplayGuard()
        self.session = Session(timings, now)  # which frames prove the peer alive
        self.rejected: dict[str, int] = {r.value: 0 for r in wire.RejectReason}
        self.received = 0

    # --- out -------------------------------------------------------------------------------

    def encode(self, kind: wire.FrameKind, payload: bytes, link: int = 0) -> bytes:
        self.seq += 1
        return wire.encode(wire.Frame(kind, self.cluster, self.me, self.generation, self.seq,
                                      link, payload), self.key)

    def new_life(self, generation: int) -> None:
        assert generation > self.generation
        self.generation = generation
        self.lives.append(generation)

    # --- in --------------------------------------------------------------------------------

    def heartbeat(self, data: bytes, link: int, slow: bool, now: float) -> Heard | Dropped:
        """One datagram from heartbeat link `link`; `slow`: a disk or serial link."""
        got = wire.decode(data, self.key)
        if isinstance(got, wire.Rejected):
            return Dropped(self.reject(got.reason, link, got.detail))
        f = got
        if f.cluster != self.cluster:
            return Dropped(self.reject(wire.RejectReason.WRONG_CLUSTER, link, f.cluster))
        if f.sender == self.me:
            return Dropped(self._own(f, link))
        if f.sender != self.peer:
            return Dropped(self.reject(wire.RejectReason.UNKNOWN_SENDER, link, f.sender))
        if f.kind is not wire.FrameKind.HEARTBEAT or not 0 <= link < len(self.link_names):
            return Dropped(self.reject(wire.RejectReason.GARBLED, link, "unexpected kind"))
        replayed = self.replay.check(f.sender, f.generation, f.seq)
        if replayed is not None:
            return Dropped(self.reject(replayed, link, f"gen {f.generation} seq {f.seq}"))
        hb = parse(f.payload)
        if hb is None:
            return Dropped(self.reject(wire.RejectReason.GARBLED, link, "payload"))
        self.replay.accept(f.sender, f.generation, f.seq)
        self.session.heard(f.generation, f.seq, now)
        verdict, age = self.session.judge(f.generation, hb.made, hb.echo, set(self.lives), now,
                                          slow=slow)
        if verdict is not Verdict.LIVE and not (
                verdict is Verdict.OLD and hb.status is NodeStatus.LEAVING):
            return Dropped(self.reject(wire.RejectReason.UNVERIFIED, link, (
                f"gen {f.generation} seq {f.seq}: " +
                ("no answer to this node's current life yet" if age is None else
                 f"made {age * 1000:.0f} ms ago"))), f.generation)
        self.received += 1
        return Heard(f, hb, None if age is None else now - age)

    def _own(self, f: wire.Frame, link: int) -> list[Note]:
        if f.generation in self.lives:
            return []  # our own broadcast looped back
        if f.generation < self.generation:
            # Older than this life, which is newer than any before it: a frame of an
            # earlier life, replayed. Counted, and said at most a few times.
            return self.reject(wire.RejectReason.STALE_GENERATION, link,
                               f"our own frame of generation {f.generation}")
        # Another host runs under our name: both would take every group. Say it loudly.
        self.rejected[wire.RejectReason.DUPLICATE_NODE.value] += 1
        return [Note(Level.ERROR, f"another host sends heartbeats as {self.me} (generation "
                                  f"{f.generation}) on {self.link_names[link]}: two nodes "
                                  f"share one name; check --node and the configuration",
                     "duplicate_node")]

    def side(self, data: bytes, sender: str, kind: wire.FrameKind,
             where: str) -> wire.Frame | list[Note]:
        """A frame that comes other than on a heartbeat link (the witness, the mailbox):
        authentic, of this cluster, from `sender`, of `kind`; else the reject notes."""
        got = wire.decode(data, self.key)
        if isinstance(got, wire.Rejected):
            return self.reject(got.reason, -1, f"({where})")
        if got.cluster != self.cluster or got.sender != sender or got.kind is not kind:
            return self.reject(wire.RejectReason.UNKNOWN_SENDER, -1, f"{got.sender} ({where})")
        return got

    def reject(self, reason: wire.RejectReason, link: int, detail: str) -> list[Note]:
        self.rejected[reason.value] += 1
        name = self.link_names[link] if 0 <= link < len(self.link_names) else "a side channel"
        return [Note(Level.DEBUG, f"dropped frame on {name}: {reason.value} {detail}".rstrip(),
                     f"frame {reason.value} {name}")]
