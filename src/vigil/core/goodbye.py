"""The goodbye a guard says for its daemon once it has stopped every group (daemon/guard.py).

Sans-IO: from the daemon's last report and the groups the guard stopped, the frames that tell
the peer and the witness this life is over, or None when that would not be true.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from vigil.model import Cluster
from vigil.wire import frame as wire
from vigil.wire.messages import GroupState, NodeStatus, parse, serialize
from vigil.wire.votes import Ask, serialize_ask

SEQ_JUMP = 1 << 16  # past every frame the daemon may have sent after its last feed


def goodbye_frames(cluster: Cluster, me: str, key: bytes, generation: int, seq: int,
                   report: bytes, stopped: Sequence[str],
                   links: Sequence[int]) -> tuple[bytes, list[bytes]] | None:
    """The frames a guard sends once it has stopped `stopped` (None: no goodbye is true).

    To the witness: an ask that holds nothing, so it frees this node's leases. To the peer,
    on each link: the daemon's last report, leaving, with the stopped groups STOPPED. They
    are numbered past anything the daemon sent: the peer and the witness accept them, and
    then nothing older of this generation.

    Only when every group is surely stopped, since a goodbye also spares the peer fencing
    this node: not when one was starting (its agent may still be at work, and the daemon's
    death does not end it: it could start something after the guard's stop), had failed to
    stop (what it holds may differ from what the guard knows after a reload), was not
    probed yet, or is active and not stopped. One that was stopping may still have its
    agent at work too, but a stop only stops (the torture saw kills during failbacks wait
    1.1 s)."""
    hb = parse(report)
    if hb is None or hb.status is NodeStatus.STARTING:
        return None
    groups = tuple(dataclasses.replace(g, eligible=False, state=GroupState.STOPPED)
                   if g.name in stopped and g.state in (GroupState.RUNNING, GroupState.STOPPING)
                   else dataclasses.replace(g, eligible=False) for g in hb.groups)
    if any(g.state is not GroupState.STOPPED for g in groups):
        return None
    payload = serialize(dataclasses.replace(hb, status=NodeStatus.LEAVING, groups=groups))
    seq += SEQ_JUMP
    ask = wire.encode(wire.Frame(wire.FrameKind.WITNESS_ASK, cluster.name, me, generation,
                                 seq, 0, serialize_ask(Ask(()))), key)
    frames = [wire.encode(wire.Frame(wire.FrameKind.HEARTBEAT, cluster.name, me, generation,
                                     seq + 1 + i, link, payload), key)
              for i, link in enumerate(links)]
    return ask, frames
