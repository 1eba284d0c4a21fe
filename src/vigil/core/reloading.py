"""A live reload as the node lives it. Sans-IO. reconfig.py plans the reload and the
daemon (daemon/services/reload.py) runs its actions; this is what they tell the node: run
under the new configuration (`reconfigure`), what a probe of an added group found
(`probed_new`), an action of the daemon's own beginning on a group (`begin`), and a removed
group stopped here (`forget`).

Added groups are UNKNOWN until probed: the policy neither starts nor stops an unknown
group, and the peer waits for a settled state. Removed groups keep their local state (the
guard, the heartbeat and `quiescent` still count them) until the daemon has stopped them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from vigil.core.notes import Note
from vigil.model import Cluster
from vigil.wire.messages import GroupState

if TYPE_CHECKING:
    from vigil.core.node import Node


class Reloading:
    def __init__(self, node: Node) -> None:
        self._node = node

    def reconfigure(self, cluster: Cluster, added: Sequence[str]) -> None:
        n = self._node
        n.cluster = cluster
        n.fencing.config = cluster.fencing
        for name in added:
            n.ownership.add(name, cluster.group(name).home)
            n.groups.add(name)
            n.eligibility.add(name)
        n.agenda.send = True

    def probed_new(self, group: str, found: GroupState,
                   missing: int | None = None) -> list[Note]:
        """What the probe of a group added by a reload found here."""
        return self._node.underway.probed_new(group, found, missing, self._node.cluster)

    def begin(self, group: str, state: GroupState) -> None:
        """The daemon starts an action of its own on `group` (a reload's restart or stop):
        STARTING or STOPPING until the node hears it finished."""
        self._node.underway.begin(group, state)

    def forget(self, group: str) -> None:
        """A group removed by a reload is stopped here (or was never here): drop it."""
        n = self._node
        for part in (n.groups, n.eligibility, n.ownership, n.underway, n.lookout, n.agenda,
                     n.promotable):
            part.forget(group)
        if n.witness is not None:
            n.witness.forget(group)
        n.waiting.pop(group, None)
        n.agenda.send = True
