"""The disk poison pill ([fencing] agent = "disk"): the pill this node writes into its peer's
disk mailbox, and what it makes of one in its own. Sans-IO (daemon/disk.py reads and writes
the mailboxes).

A pill is a signed frame of this node's (core/frames.py) naming the peer's life it is for. A
valid pill for any life of this process sets `poisoned`: the daemon then releases everything
and stops. A pill for another node or an older process is ignored (said at
INFO, rate-limited).
"""

from __future__ import annotations

from vigil.core.frames import Frames
from vigil.core.notes import Level, Note
from vigil.wire import frame as wire
from vigil.wire.votes import Poison, parse_poison, poison_applies, serialize_poison


class PoisonPill:
    def __init__(self, frames: Frames, me: str, peer: str) -> None:
        self.frames, self.me, self.peer = frames, me, peer
        self.poisoned: str | None = None  # who told this node to stop

    def frame(self, generation: int | None, now_ms: int) -> bytes:
        """The pill to write into the peer's mailbox, for its life `generation`."""
        return self.frames.encode(wire.FrameKind.POISON,
                                  serialize_poison(Poison(self.peer, generation, now_ms)))

    def mail(self, data: bytes) -> list[Note]:
        """Our disk mailbox changed (its content `data`)."""
        f = self.frames.side(data, self.peer, wire.FrameKind.POISON, "disk mailbox")
        if isinstance(f, list):
            return f
        p = parse_poison(f.payload)
        if p is None:
            return self.frames.reject(wire.RejectReason.GARBLED, -1, "poison pill")
        # Every life of this process: a pill for the one the guard said goodbye for is
        # still for us (the peer fenced this process, whatever it calls itself now).
        if not any(poison_applies(p, self.me, g) for g in self.frames.lives):
            return [Note(Level.INFO, f"ignoring a poison pill from {f.sender} meant for "
                                     f"{p.target} generation {p.generation}", "old pill")]
        self.poisoned = f.sender
        return [Note(Level.ERROR, f"POISONED by {f.sender} through the disk: releasing "
                                  f"everything and stopping")]
