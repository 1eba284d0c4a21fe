"""What a heartbeat says, and its compact JSON form inside a frame payload. Sans-IO.

vigil's protocol is state-based: every heartbeat carries the sender's whole view (its status
and, per group, its local state, the assignment it knows and whether it could run the
group). A lost frame is repaired by the next one; a frame sent at once on every change makes
planned hand-overs as fast as the network. `parse` validates every field and returns None for
anything malformed: the caller counts it as garbled.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass


class NodeStatus(str, enum.Enum):
    STARTING = "starting"  # probing what is already there; group states not known yet
    UP = "up"
    LEAVING = "leaving"  # shutting down cleanly: every group it held is released


class GroupState(str, enum.Enum):
    UNKNOWN = "unknown"  # not probed yet
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"  # a stop failed: the resources may still be held


ACTIVE_STATES = frozenset({GroupState.STARTING, GroupState.RUNNING, GroupState.STOPPING})


@dataclass(frozen=True, slots=True, order=True)
class Assignment:
    """Which node should run a group. Ordered: the larger assignment wins everywhere.

    Each change increments the epoch; `by` names the node that made it, which breaks the tie
    when both nodes change the same group at once, so both converge on one winner.
    """

    epoch: int
    by: str
    owner: str


@dataclass(frozen=True, slots=True)
class GroupReport:
    name: str
    state: GroupState
    assignment: Assignment
    eligible: bool  # could the sender run this group now (its interfaces up, no failure)


@dataclass(frozen=True, slots=True)
class Echo:
    """The newest frame the sender has received from the receiver: its (generation, seq),
    and how long before making this heartbeat it arrived (ms). See session.py."""

    generation: int
    seq: int
    held_ms: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    status: NodeStatus
    groups: tuple[GroupReport, ...]
    ping: int | None = None  # ping nodes the sender reaches (None: none configured / unknown)
    # Does the sender hear the receiver (sees it up)? A report made while the sender counted
    # us dead may be followed by its takeover at any moment: policy starts nothing on it.
    hears_you: bool = True
    made: int = 0  # when the sender made it: ms on its own monotonic clock (session.py)
    echo: Echo | None = None  # None: the sender has not heard the receiver yet

    def group(self, name: str) -> GroupReport | None:
        for g in self.groups:
            if g.name == name:
                return g
        return None


def serialize(hb: Heartbeat) -> bytes:
    doc: dict[str, object] = {
        "s": hb.status.value,
        "g": [
            [g.name, g.state.value, g.assignment.owner, g.assignment.epoch, g.assignment.by,
             int(g.eligible)]
            for g in hb.groups
        ],
    }
    if hb.ping is not None:
        doc["p"] = hb.ping
    if not hb.hears_you:
        doc["d"] = 1
    doc["t"] = hb.made
    if hb.echo is not None:
        doc["e"] = [hb.echo.generation, hb.echo.seq, hb.echo.held_ms]
    return json.dumps(doc, separators=(",", ":")).encode()


_MAX_EPOCH = 2**62
# `made` and `held_ms` never grow past 15 digits (ms: 31,000 years): framesize.py counts so
MS_MAX = 10**15 - 1
_MAX_U64 = 2**64


def _u64(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _MAX_U64


def parse(payload: bytes) -> Heartbeat | None:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict) or not {"s", "g", "t"} <= set(doc) <= {"s", "g", "p", "d", "t",
                                                                         "e"}:
        return None
    made, echo = doc["t"], doc.get("e")
    if not _u64(made):
        return None
    if "e" in doc and not (isinstance(echo, list) and len(echo) == 3 and
                           all(_u64(x) for x in echo)):
        return None
    if doc.get("d", 1) != 1 or type(doc.get("d", 1)) is not int:
        return None
    ping = doc.get("p")
    if ping is not None and (type(ping) is not int or not 0 <= ping <= 255):
        return None
    try:
        status = NodeStatus(doc["s"])
    except (ValueError, TypeError):
        return None
    raw = doc["g"]
    if not isinstance(raw, list):
        return None
    groups: list[GroupReport] = []
    names: set[str] = set()
    for item in raw:
        if not (isinstance(item, list) and len(item) == 6):
            return None
        name, state, owner, epoch, by, eligible = item
        if not (isinstance(name, str) and isinstance(owner, str) and isinstance(by, str)):
            return None
        if type(epoch) is not int or not 0 <= epoch < _MAX_EPOCH or eligible not in (0, 1):
            return None
        if type(eligible) is not int or name in names or not name:
            return None
        try:
            st = GroupState(state)
        except (ValueError, TypeError):
            return None
        names.add(name)
        groups.append(GroupReport(name, st, Assignment(epoch, by, owner), bool(eligible)))
    return Heartbeat(status, tuple(groups), ping, "d" not in doc, made,
                     None if echo is None else Echo(*echo))
