"""The latest time any input carried, shared by the node and its parts. Sans-IO.

Inputs carry their own `now`, and one may carry a time a little behind another (a reply
handed over after a tick). What is judged "as of the latest input" reads `t`; every input
moves it forward through `see`, never back."""

from __future__ import annotations


class Latest:
    __slots__ = ("t",)

    def __init__(self, t: float) -> None:
        self.t = t

    def see(self, now: float) -> float:
        """An input carried `now`: the latest time, after it."""
        self.t = max(self.t, now)
        return self.t
