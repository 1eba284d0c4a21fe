"""The sans-IO cores' notes, written to the log; those untrusted input caused are rate-limited.

A core (node.py, arbiter.py) returns `Note`s; a note with a `key` was caused by something a
peer or an attacker sent (a frame that failed a check, a second host under our name). Under
one key, `BURST` lines go out at once and then one every 10 s; the others are counted, and
the count follows, with the next line of that key or, when none comes, from `due` (the daemon
calls it every keepalive): `... (12 more like it held back)`, or on its own line
`held back 170573 lines like: dropped frame on eth0: stale_generation ...`. So 20,000
replayed frames a second cost a few lines, not 30 MB of log (issue 12).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from vigil.core.notes import Note
from vigil.ratelimit import Allowed, RateLimiter

BURST = 5
PER_SECOND = 0.1


class NoteLog:
    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.limit = RateLimiter(PER_SECOND, BURST)
        self._last: dict[str, Note] = {}  # per key, the latest note held back (for `due`)

    def write(self, notes: Iterable[Note], now: float) -> None:
        for n in notes:
            if not n.key:
                self.logger.log(n.level, "%s", n.text)  # Level's values are logging's
                continue
            if not self.logger.isEnabledFor(n.level):
                continue  # a debug line nobody reads needs no limit
            verdict = self.limit.check(n.key, now)
            if isinstance(verdict, Allowed):
                more = f" ({verdict.suppressed} more like it held back)" \
                    if verdict.suppressed else ""
                self.logger.log(n.level, "%s%s", n.text, more)
            else:
                self._last[n.key] = n

    def due(self, now: float) -> None:
        """Say what was held back under keys that went quiet."""
        for s in self.limit.due(now):
            n = self._last.pop(s.key, None)
            if n is not None:
                self.logger.log(n.level, "held back %d lines like: %s", s.suppressed, n.text)
