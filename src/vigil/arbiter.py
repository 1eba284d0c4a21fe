"""The witness's decisions, sans-IO: which node may run each group while the nodes cannot
talk to each other (compare corosync-qnetd; daemon/witness.py is its shell).

Each node asks every keepalive for a lease on the groups it holds or wants (wire/votes.py).
A lease on a group is granted to at most one node at a time and lasts `lease` seconds from
the moment the ask arrived; the holder keeps it by asking again. Another node gets it only
once the holder let it go (asked without it: it stopped the group) or its lease expired.

The node side (core/witness.py) keeps a lease only for half of `lease`, counted from when it *sent*
the granted ask, and stops a group whose lease lapsed when its peer is dead too. Since an ask
arrives after it was sent, the holder's own deadline always comes at least `lease / 2`
before the witness would give the group to the other node: time to stop it.

After a start, for one lease, the witness grants a node only the leases the node says it
still holds (by its own clock, which runs out first): leases of its previous life may still
run and it does not remember them, but at most one node can validly claim each, and a node
running alone must not lose its groups to a witness restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vigil.core.notes import Level, Note
from vigil.wire import frame as wire
from vigil.wire.replay import ReplayGuard
from vigil.wire.votes import Reply, parse_ask, serialize_reply


@dataclass(slots=True)
class _Lease:
    holder: str
    expires: float


@dataclass(slots=True)
class Arbiter:
    cluster: str
    nodes: tuple[str, ...]
    groups: tuple[str, ...]
    key: bytes
    name: str  # the witness's own name in its frames
    lease: float
    generation: int
    started: float
    seq: int = 0
    leases: dict[str, _Lease] = field(default_factory=dict)
    last_ask: dict[str, float] = field(default_factory=dict)  # node -> when last heard
    guard: ReplayGuard = field(default_factory=ReplayGuard)
    rejected: int = 0

    def receive(self, data: bytes, now: float) -> tuple[bytes | None, list[Note]]:
        """One datagram: the reply to send back (None: drop it silently) and log notes."""
        got = wire.decode(data, self.key)
        if isinstance(got, wire.Rejected):
            self.rejected += 1
            return None, [Note(Level.DEBUG, f"dropped datagram: {got.reason.value}",
                               f"datagram {got.reason.value}")]
        f = got
        if f.cluster != self.cluster or f.sender not in self.nodes or \
                f.kind is not wire.FrameKind.WITNESS_ASK:
            self.rejected += 1
            return None, [Note(Level.DEBUG, f"dropped frame from {f.sender!r} of cluster "
                                            f"{f.cluster!r}, kind {f.kind.name}", "foreign")]
        if self.guard.check(f.sender, f.generation, f.seq) is not None:
            self.rejected += 1
            return None, [Note(Level.DEBUG, f"dropped replayed ask from {f.sender}", "replay")]
        ask = parse_ask(f.payload)
        if ask is None or not set(ask.hold) <= set(self.groups):
            self.rejected += 1
            return None, [Note(Level.DEBUG, f"dropped garbled ask from {f.sender}", "garbled")]
        self.guard.accept(f.sender, f.generation, f.seq)
        notes = []
        if f.sender not in self.last_ask:
            notes.append(Note(Level.INFO, f"node {f.sender} is asking (generation "
                                          f"{f.generation})"))
        self.last_ask[f.sender] = now
        starting = now < self.started + self.lease
        granted = [g for g in (ask.leased if starting else ask.hold)
                   if self._grant(g, f.sender, now, notes)]
        for g, lease in list(self.leases.items()):
            if lease.holder == f.sender and g not in ask.hold:
                del self.leases[g]
                notes.append(Note(Level.INFO, f"{f.sender} let go of group {g}"))
        holders = tuple(sorted((g, l.holder) for g, l in self.leases.items()
                               if l.expires > now))
        reply = Reply(f.generation, f.seq, tuple(granted), holders, starting,
                      round(self.lease * 1000))
        self.seq += 1
        out = wire.encode(wire.Frame(wire.FrameKind.WITNESS_REPLY, self.cluster, self.name,
                                     self.generation, self.seq, 0, serialize_reply(reply)),
                          self.key)
        return out, notes

    def _grant(self, group: str, node: str, now: float, notes: list[Note]) -> bool:
        lease = self.leases.get(group)
        if lease is not None and lease.holder != node and lease.expires > now:
            return False
        if lease is None or lease.holder != node:
            was = "" if lease is None else f" (the lease of {lease.holder} expired)"
            notes.append(Note(Level.WARNING if lease else Level.INFO,
                              f"granting group {group} to {node}{was}"))
        self.leases[group] = _Lease(node, now + self.lease)
        return True
