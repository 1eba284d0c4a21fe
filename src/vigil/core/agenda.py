"""What the next step owes the daemon besides the policy's decision. Sans-IO.

Any input may leave work for the next `Node.step`, and the node's parts note it here: our
state changed, so a heartbeat must go out on every link at once (`send`); groups that may go
home now (`failback`: policy.failback); groups whose addresses must be announced again, a
conflict over them being over (`reannounce`); notes of outputs that return none (`notes`,
logged with the step); a frame that proved nothing, to be answered at once (`answer`), though
at most twice a keepalive whatever comes in. The step takes each (`take_*`), which clears it.
"""

from __future__ import annotations

import math

from vigil.core.notes import Note


class Agenda:
    def __init__(self, keepalive: float) -> None:
        self.send = True  # our state changed: send a heartbeat on every link now
        self.failback: set[str] = set()  # groups that may go home (see policy.failback)
        self.reannounce: set[str] = set()  # groups whose addresses must be announced again
        self.notes: list[Note] = []  # notes from outputs (Node.frame), logged with the step
        self.answer = False  # a frame proved nothing: answer it at once
        self._answered = -math.inf
        self._keepalive = keepalive

    def take_send(self, now: float) -> bool:
        """Whether the step must send a heartbeat now."""
        send, self.send = self.send, False
        if self.answer and now >= self._answered + self._keepalive / 2:
            send, self._answered = True, now  # at most twice a keepalive
        self.answer = False
        return send

    def take_failback(self) -> frozenset[str]:
        due, self.failback = frozenset(self.failback), set()
        return due

    def take_reannounce(self) -> tuple[str, ...]:
        due, self.reannounce = tuple(sorted(self.reannounce)), set()
        return due

    def take_notes(self) -> list[Note]:
        notes, self.notes = self.notes, []
        return notes

    def forget(self, group: str) -> None:
        """A group removed by a reload."""
        self.failback.discard(group)
        self.reannounce.discard(group)
