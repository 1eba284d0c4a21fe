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
from typing import get_args

from vigil.replica.promotion import Replica, Role


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
    # Its instance of each promotable group it has examined (replica/promotion.py).
    replicas: tuple[tuple[str, Replica], ...] = ()

    def group(self, name: str) -> GroupReport | None:
        for g in self.groups:
            if g.name == name:
                return g
        return None

    def replica(self, name: str) -> Replica | None:
        return next((r for n, r in self.replicas if n == name), None)


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
    if hb.replicas:
        doc["r"] = [_replica_row(name, r) for name, r in hb.replicas]
    return json.dumps(doc, separators=(",", ":")).encode()


def _replica_row(name: str, r: Replica) -> list[object]:
    ask = [] if r.release_ask is None else list(r.release_ask)
    return [name, r.role, r.system_id, r.timeline, r.lsn, r.sync_with or "", r.sync_from,
            *r.sync_epoch, ask, *r.released]


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
                                                                         "e", "r"}:
        return None
    replicas = _replicas(doc.get("r", []))
    if replicas is None:
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
                     None if echo is None else Echo(*echo), replicas)


_ROLES = frozenset(get_args(Role))


def _replicas(raw: object) -> tuple[tuple[str, Replica], ...] | None:
    """The "r" rows (see `_replica_row`), every field checked; None when any is bad."""
    if not isinstance(raw, list):
        return None
    out: list[tuple[str, Replica]] = []
    for row in raw:
        if not (isinstance(row, list) and len(row) == 12):
            return None
        name, role, system_id, timeline, lsn, sync_with, sync_from, e0, e1, ask, r0, r1 = row
        if not (isinstance(name, str) and name and isinstance(role, str) and role in _ROLES
                and isinstance(sync_with, str) and isinstance(ask, list) and len(ask) in (0, 2)
                and all(_u64(x) for x in (system_id, timeline, lsn, sync_from, e0, e1, r0, r1,
                                          *ask))) or any(n == name for n, _ in out):
            return None
        out.append((name, Replica(role, system_id, timeline, lsn,  # type: ignore[arg-type]
                                  sync_with or None, sync_from, (e0, e1),
                                  (ask[0], ask[1]) if ask else None, (r0, r1))))
    return tuple(out)
