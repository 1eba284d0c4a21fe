"""How large the frames of a cluster can get: the checks `check-config` and the daemon run
before start, so that a configuration whose heartbeats (or witness messages) could not fit in
one frame, or not cross a serial link within a keepalive, is refused instead of failing later.

Sized with the largest values each message can carry; each problem names the field at fault
and the limit it passes (the names in a frame: wire.MAX_NAME bytes each; a whole frame:
wire.MAX_FRAME bytes). The parsers refuse a name that is too long already, at its line; the
checks here also hold for a model built otherwise, and for what only the whole can break (the
number of groups). Pure: imports errors, model and wire only.
"""

from __future__ import annotations

import dataclasses

from vigil.errors import ConfigProblem
from vigil.model import Cluster
from vigil.replica.promotion import Replica
from vigil.wire import frame as wire
from vigil.wire.messages import (MS_MAX, Assignment, Echo, GroupReport, GroupState, Heartbeat,
                                 NodeStatus, serialize)
from vigil.wire.votes import Ask, Reply, serialize_ask, serialize_reply


def serial_problem(cluster: Cluster) -> ConfigProblem | None:
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
            return ConfigProblem(
                cluster.source, None, "link",
                f"serial link {l.device}: a heartbeat of up to {size} bytes takes "
                f"{seconds * 1000:.0f} ms at {l.baud} baud, longer than keepalive "
                f"({fmt_duration(cluster.timings.keepalive)}); raise baud or keepalive")
    return None


def _longest(names: list[str]) -> str:
    return max(names, key=lambda n: len(n.encode()))


def _worst_frames(cluster: Cluster) -> dict[str, tuple[wire.FrameKind, str, bytes]]:
    """The largest frame of each kind this cluster can send: (kind, sender, payload)."""
    longest = _longest([n.name for n in cluster.nodes])
    worst = Assignment(2**62 - 1, longest, longest)
    # The clock and the echo (session.py) at their longest: the peer's generation and seq
    # as the wire allows them, our milliseconds as session.py caps them.
    big, ms = 2**64 - 1, MS_MAX
    replica = Replica("primary", big, big, big, longest, big, (big, big), (big, big),
                      (big, big))
    hb = Heartbeat(NodeStatus.LEAVING, tuple(
        GroupReport(g.name, GroupState.STOPPING, worst, True) for g in cluster.groups),
        255 if cluster.ping else None, False, ms, Echo(big, big, ms),
        tuple((g.name, replica) for g in cluster.groups if g.promotable))
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


def _size(cluster: Cluster, sender: str, payload: bytes) -> int:
    """The length `_encoded` gives, computed, so that it can be told for any size (the
    encoder refuses what does not fit, and a payload past 64 KiB even before that)."""
    return wire.MIN_FRAME + len(cluster.name.encode()) + len(sender.encode()) + len(payload)


def _worst_frame_size(cluster: Cluster) -> int:
    _, sender, payload = _worst_frames(cluster)["heartbeat"]
    return _size(cluster, sender, payload)


def _too_large(cluster: Cluster) -> tuple[str, int] | None:
    """The first kind of frame that does not fit, and its size (None when all fit)."""
    for what, (_, sender, payload) in _worst_frames(cluster).items():
        size = _size(cluster, sender, payload)
        if size > wire.MAX_FRAME:
            return what, size
    return None


def _short(name: str) -> str:
    return repr(name if len(name) <= 24 else name[:21] + "...")


def _name_problem(cluster: Cluster) -> ConfigProblem | None:
    """A name every frame carries (the cluster's, the sender's) that no frame can hold."""
    named = [("cluster.name", "the cluster name", cluster.name)]
    named += [("node", "node name", n.name) for n in cluster.nodes]
    if cluster.witness is not None:
        named.append(("witness.name", "the witness name", cluster.witness.name))
    for key, what, name in named:
        size = len(name.encode())
        if not 0 < size <= wire.MAX_NAME:
            return ConfigProblem(
                cluster.source, None, key,
                f"{what} {_short(name)} is {size} bytes long (UTF-8); every frame carries "
                f"it, in 1 to {wire.MAX_NAME} bytes: use at most {wire.MAX_NAME}")
    return None


def frame_problem(cluster: Cluster) -> ConfigProblem | None:
    """Why this cluster's heartbeats (or witness messages) could not fit in one frame (None
    when they do). Each frame carries the cluster's and the sender's names (at most
    wire.MAX_NAME bytes each), and heartbeats and witness messages carry every group, so the
    number of groups and the length of their names are bounded by wire.MAX_FRAME; checked
    with the longest values each can show. A problem says how many of the groups would fit."""
    named = _name_problem(cluster)
    if named is not None:
        return named
    too_large = _too_large(cluster)
    if too_large is None:
        return None
    what, size = too_large
    fit, lo = 0, len(cluster.groups)  # the first `fit` groups fit, the first `lo` do not
    while lo - fit > 1:
        mid = (fit + lo) // 2
        if _too_large(dataclasses.replace(cluster, groups=cluster.groups[:mid])) is None:
            fit = mid
        else:
            lo = mid
    fitting = (f"the first {fit} groups fit (up to {cluster.groups[fit - 1].name})" if fit
               else "not even one group fits")
    return ConfigProblem(
        cluster.source, None, "group",
        f"{len(cluster.groups)} groups make a {what} of {size} bytes, and a frame carries at "
        f"most {wire.MAX_FRAME} bytes (the {what} carries every group, with its name): "
        f"{fitting}; use fewer groups or shorter group names")
