"""How large the frames of a cluster can get: the checks `check-config` and the daemon run
before start, so that a configuration whose heartbeats (or witness messages) could not fit in
one frame, or not cross a serial link within a keepalive, is refused instead of failing later.

Sized with the largest values each message can carry. Pure: imports model and wire only.
"""

from __future__ import annotations

from vigil.model import Cluster
from vigil.wire import frame as wire
from vigil.wire.messages import (Assignment, GroupReport, GroupState, Heartbeat, NodeStatus,
                                 serialize)
from vigil.wire.votes import Ask, Reply, serialize_ask, serialize_reply


def serial_problem(cluster: Cluster) -> str | None:
    """Why a serial link could not carry one heartbeat per keepalive (None when it can).

    Sized with the largest heartbeat this cluster can send; its JSON payload is ASCII (never
    escaped on the line) and only the binary fields may double (wire/stream.py)."""
    from vigil.model import SerialLink, fmt_duration
    from vigil.wire import stream

    serial = [l for l in cluster.links if isinstance(l, SerialLink)]
    if not serial:
        return None
    size = _worst_frame_size(cluster)
    binary = wire.MAC_SIZE + 8 + 8 + 1 + 2
    for l in serial:
        seconds = stream.airtime(size, l.baud) * (size + binary) / (2 * size)
        if seconds > cluster.timings.keepalive:
            return (f"serial link {l.device}: a heartbeat of up to {size} bytes takes "
                    f"{seconds * 1000:.0f} ms at {l.baud} baud, longer than keepalive "
                    f"({fmt_duration(cluster.timings.keepalive)}); raise baud or keepalive")
    return None


def _worst_frames(cluster: Cluster) -> dict[str, tuple[wire.FrameKind, str, bytes]]:
    """The largest frame of each kind this cluster can send: (kind, sender, payload)."""
    longest = max((n.name for n in cluster.nodes), key=len)
    worst = Assignment(2**62 - 1, longest, longest)
    hb = Heartbeat(NodeStatus.LEAVING, tuple(
        GroupReport(g.name, GroupState.STOPPING, worst, True) for g in cluster.groups),
        255 if cluster.ping else None, False)
    frames = {"heartbeat": (wire.FrameKind.HEARTBEAT, longest, serialize(hb))}
    if cluster.witness is not None:
        names = tuple(g.name for g in cluster.groups)
        frames["witness ask"] = (wire.FrameKind.WITNESS_ASK, longest,
                                 serialize_ask(Ask(names, names)))
        frames["witness reply"] = (wire.FrameKind.WITNESS_REPLY, cluster.witness.name,
                                   serialize_reply(Reply(2**64 - 1, 2**64 - 1, names, tuple(
                                       (g, longest) for g in names), True, 2**32 - 1)))
    return frames


def _encoded(cluster: Cluster, kind: wire.FrameKind, sender: str, payload: bytes) -> bytes:
    return wire.encode(wire.Frame(kind, cluster.name, sender, 2**64 - 1, 2**64 - 1, 255,
                                  payload), b"k")


def _worst_frame_size(cluster: Cluster) -> int:
    kind, sender, payload = _worst_frames(cluster)["heartbeat"]
    return len(_encoded(cluster, kind, sender, payload))


def frame_problem(cluster: Cluster) -> str | None:
    """Why this cluster's heartbeats (or witness messages) could not fit in one frame (None
    when they do). They carry every group, so the number of groups and the length of their
    names are bounded by wire.MAX_FRAME; checked with the longest values each can show."""
    for what, (kind, sender, payload) in _worst_frames(cluster).items():
        try:
            _encoded(cluster, kind, sender, payload)
        except ValueError as e:
            return (f"{len(cluster.groups)} groups do not fit in one {what} frame ({e}); "
                    f"use fewer groups or shorter group names")
    return None
