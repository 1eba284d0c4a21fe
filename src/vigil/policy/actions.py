"""What the policy tells a node to do: the actions `decide` emits, in one place.

The node (core/underway.py) marks the group's new local state; the daemon's group
worker carries the action out and reports back (`Node.finished`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True, slots=True)
class Start:
    group: str
    reason: str
    failover: bool = False  # taken from a dead peer (not handed over): the metrics' cause


@dataclass(frozen=True, slots=True)
class Stop:
    group: str
    reason: str


@dataclass(frozen=True, slots=True)
class Recover:
    """Restart a running group in place from resource `index` on (core/underway.py asks for
    it after a failed monitor): stop that resource and the later ones in reverse, start them
    in order."""

    group: str
    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class Probe:
    """Look before taking (lookout.py): ask the network whether the group's addresses still
    answer elsewhere. Changes nothing here; the answers decide whether the takeover goes on."""

    group: str
    reason: str = "its addresses may still be held by the peer's host"


Action = Union[Start, Stop, Recover, Probe]
