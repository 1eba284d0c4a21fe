"""This node's side of the witness (arbiter.py): the asks it sends, the leases it holds.

Every keepalive the node asks the witness for a lease on the groups it runs, and, while its
peer is dead, on those it would take over (`ask`). A reply answers one outstanding ask of
this life only (`ASKS_KEPT` are remembered); a lease is held for half the lease the witness
applies, counted from when the ask was sent, so a reply delayed in the network buys nothing.
Whether a lease is needed (the peer dead or unheard) is for core/eligibility.py and
core/failover.py to say; this class says what the witness has granted and, when it has not,
why (`blocks`). Its frames are this node's (core/frames.py): `ask_frame` numbers and signs an
ask, `verify` checks a reply. Sans-IO: `now` is an argument.
"""

from __future__ import annotations

from vigil.core.frames import Frames
from vigil.core.notes import Level, Note
from vigil.model import Witness
from vigil.wire import frame as wire
from vigil.wire.votes import Ask, Reply, parse_reply, serialize_ask

ASKS_KEPT = 32  # outstanding asks a reply may answer (older ones are forgotten)


class WitnessClient:
    def __init__(self, lease: float, started: float = 0.0, grace: float = 0.0) -> None:
        """`started`: when this life began; `grace`: how long it may keep what it found
        running while waiting for the witness's first answer (`answering`)."""
        self.lease = lease  # the cluster's lease (model.witness_lease)
        self.started, self.grace = started, grace
        self.leases: dict[str, float] = {}  # group -> until when this node holds it
        self.seen: float | None = None  # when the witness last answered
        self.holders: dict[str, str] = {}  # group -> node, from the latest reply
        self.starting = False  # the witness has just started: it grants nothing yet
        self._asks: dict[int, float] = {}  # seq -> when sent
        self._refusals: set[str] = set()  # groups refused to us since the peer died

    def ask(self, seq: int, wanted: tuple[str, ...], now: float) -> bytes:
        """The payload of the ask numbered `seq`, sent now."""
        self._asks[seq] = now
        while len(self._asks) > ASKS_KEPT:
            del self._asks[next(iter(self._asks))]
        return serialize_ask(Ask(wanted, self.held(now)))

    def ask_frame(self, frames: Frames, wanted: tuple[str, ...], now: float) -> bytes:
        """The frame of an ask for `wanted`, sent now."""
        return frames.encode(wire.FrameKind.WITNESS_ASK, self.ask(frames.seq + 1, wanted, now))

    def verify(self, frames: Frames, data: bytes, witness: Witness) -> Reply | list[Note]:
        """A reply from `witness` that answers an open ask of this life, or the notes of
        its rejection (counted like any bad frame)."""
        f = frames.side(data, witness.name, wire.FrameKind.WITNESS_REPLY, "witness reply")
        if isinstance(f, list):
            return f
        r = parse_reply(f.payload)
        if r is None:
            return frames.reject(wire.RejectReason.GARBLED, -1, "witness reply")
        if r.generation != frames.generation or not self.open(r.seq):
            return frames.reject(wire.RejectReason.REPLAY, -1, "witness reply to no open ask")
        return r

    def open(self, seq: int) -> bool:
        """A reply to `seq` would answer an ask of this life."""
        return seq in self._asks

    def reply(self, r: Reply, known: set[str], me: str, peer: str, peer_dead: bool,
              where: str, now: float) -> list[Note]:
        """A reply to an open ask (`open`), of this life; `known`: the groups that exist."""
        sent = self._asks.pop(r.seq)
        notes = []
        if self.seen is None or now - self.seen > self.lease:
            notes.append(Note(Level.INFO, f"the witness {where} answers"))
        self.seen = now
        self.starting = r.starting
        holders = dict(r.holders)
        # Held for half the lease the witness applies, should its configuration differ.
        until = sent + min(self.lease, r.lease_ms / 1000) / 2
        for g in r.granted:
            if g in self.leases or g in known:
                if not self.holds(g, now) and peer_dead:
                    notes.append(Note(Level.WARNING, f"the witness grants group {g} to this "
                                                     f"node while {peer} is dead"))
                self.leases[g] = max(self.leases.get(g, 0.0), until)
        for g, holder in holders.items():
            if holder != me and peer_dead and g not in self._refusals:
                self._refusals.add(g)  # said once per death of the peer
                notes.append(Note(Level.WARNING, f"the witness gives group {g} to {holder}: "
                                                 f"{holder} lives on its side; not taking "
                                                 f"it over"))
        self.holders = holders
        return notes

    def answering(self, now: float) -> bool:
        """The witness has answered this life, or the grace for its first answer is over.
        Until then a lease not held is not yet a lease lost: a restarted node asks at once
        for what it found running, and an established witness grants it back (the lease of
        its previous life names it). The grace is short (half a deadtime) so that a stop it
        delays still ends long before the peer could start the group: the peer waits one
        settle time after declaring this node dead (core/failover.py)."""
        return self.seen is not None or now >= self.started + self.grace

    def holds(self, group: str, now: float) -> bool:
        return self.leases.get(group, 0.0) > now

    def held(self, now: float) -> tuple[str, ...]:
        return tuple(g for g, t in self.leases.items() if t > now)

    def blocks(self, group: str, me: str, peer: str, now: float) -> str | None:
        """Why a dead peer's `group` may not be taken over yet (None: this node holds it)."""
        if self.holds(group, now):
            return None
        holder = self.holders.get(group)
        if self.seen is None or now - self.seen > self.lease:
            return f"{peer} is dead but the witness does not answer"
        if self.starting:
            return f"{peer} is dead; the witness has just started and grants nothing yet"
        if holder and holder != me:
            return f"{peer} is dead to this node but holds the witness's lease"
        return f"{peer} is dead; waiting for the witness's lease"

    def peer_up(self) -> None:
        self._refusals.clear()

    def new_life(self) -> None:
        """The guard said goodbye for this life: its asks and leases are void."""
        self._asks.clear()
        self.leases.clear()

    def forget(self, group: str) -> None:
        self.leases.pop(group, None)

    def deadlines(self, now: float) -> list[float]:
        """When a lease runs out, or the grace for the first answer: a decision may change
        then."""
        first = [] if self.answering(now) else [self.started + self.grace]
        return [t for t in self.leases.values() if t > now] + first
