"""A real server's health from its checks' results: rise passes in a row bring it up, fall
failures in a row take it down (keepalived's, ldirectord's and HAProxy's rule), so that a
flapping server is damped. Pure: the checkers feed it results, the balancer reads `up`.

A server's first result decides at once: a director that starts, or takes over, balances
from its first round of checks instead of waiting `rise` intervals with every server down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Change = Literal["up", "down"]


@dataclass(slots=True)
class Health:
    rise: int
    fall: int
    up: bool | None = None  # None until the first result
    streak: int = 0  # results in a row that disagree with `up`
    flaps: int = 0  # changes of state after the first
    last: tuple[bool, str] | None = field(default=None)  # the last result and why

    def __post_init__(self) -> None:
        if self.rise < 1 or self.fall < 1:
            raise ValueError("rise and fall are at least 1")

    def observe(self, ok: bool, why: str = "") -> Change | None:
        """Record one check's result; the change of state it makes, if any."""
        self.last = (ok, why)
        if self.up is None:
            self.up = ok
            return "up" if ok else "down"
        if ok == self.up:
            self.streak = 0
            return None
        self.streak += 1
        if self.streak < (self.rise if ok else self.fall):
            return None
        self.up, self.streak = ok, 0
        self.flaps += 1
        return "up" if ok else "down"
