"""Replay protection: a (generation, sequence) window per sender, sans-IO.

Every daemon start picks a generation larger than any before it, and numbers its frames
1, 2, 3... within it, across all links. Frames of one generation can arrive out of order
(different links, different delays), so a sliding window of WINDOW sequence numbers, as in
IPsec's anti-replay (RFC 4303 3.4.3), accepts each number once:

- a generation older than the newest seen from that sender: stale (an old capture, or a
  frame from before a restart still in flight);
- a newer generation: the sender restarted; the window starts afresh;
- the same generation: accepted if newer than anything seen, or inside the window and not
  yet seen; otherwise a replay.

`check` only looks; `accept` records. The daemon records a frame only after it passed every
other check, so a forged frame can never advance the window.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.wire.frame import RejectReason

WINDOW = 256


@dataclass(slots=True)
class _Window:
    generation: int
    highest: int
    seen: int  # bit i set: highest - i was seen


class ReplayGuard:
    def __init__(self) -> None:
        self._senders: dict[str, _Window] = {}

    def check(self, sender: str, generation: int, seq: int) -> RejectReason | None:
        w = self._senders.get(sender)
        if w is None or generation > w.generation:
            return None
        if generation < w.generation:
            return RejectReason.STALE_GENERATION
        if seq > w.highest:
            return None
        offset = w.highest - seq
        if offset >= WINDOW or (w.seen >> offset) & 1:
            return RejectReason.REPLAY
        return None

    def accept(self, sender: str, generation: int, seq: int) -> None:
        assert self.check(sender, generation, seq) is None, "accept() of a rejected frame"
        w = self._senders.get(sender)
        if w is None or generation > w.generation:
            self._senders[sender] = _Window(generation, seq, 1)
        elif seq > w.highest:
            shift = seq - w.highest
            w.seen = ((w.seen << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            w.highest = seq
        else:
            w.seen |= 1 << (w.highest - seq)

    def generation(self, sender: str) -> int | None:
        w = self._senders.get(sender)
        return w.generation if w else None
