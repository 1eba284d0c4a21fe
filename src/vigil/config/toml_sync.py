"""[conntrack_sync] of vigil.toml: the balancer's connection sync (balancer/ctsync.py).

    [conntrack_sync]
    link = 2            # the nodes' second address carries it (default: their last one)
    port = 3780         # conntrackd's default
    interface = "eth1"  # optional: bind it to this device

A reader beside the Checker it reports through, like toml_virtual.py's.
"""

from __future__ import annotations

from collections.abc import Sequence

from vigil import model
from vigil.balancer import model as lb
from vigil.config.locate import KeyPath
from vigil.config.toml_checker import Checker, Table
from vigil.config.toml_values import as_ifname, int_in

_KEYS = ("link", "port", "interface")


class SyncReader:
    def __init__(self, checker: Checker) -> None:
        self.c = checker

    def conntrack_sync(self, doc: Table, nodes: Sequence[model.Node] | None,
                       services: Sequence[lb.VirtualServer]) -> lb.ConnSync | None:
        c = self.c
        p: KeyPath = ("conntrack_sync",)
        t = c.optional_table(doc, p, _KEYS, "[conntrack_sync]")
        if t is None:
            return None
        link = c.field(t, p, "link", int_in(1, 16))
        port = c.field(t, p, "port", int_in(1, 65535))
        interface = c.field(t, p, "interface", as_ifname)
        if not any(vs.forward == "nat" for vs in services):
            c.report(p, "conntrack_sync keeps NAT connections through a takeover; there is no "
                        "[[virtual_server]] with forward = \"nat\"")
        if nodes is None:
            return None
        counts = {len(n.addresses) for n in nodes}
        have = min(counts) if counts else 0
        if have == 0:
            c.report((*p, "link") if link is not None else p,
                     "the sync runs between the nodes' addresses, and a node has none: give "
                     "each [[node]] an address")
            return None
        if link is not None and link > have:
            c.report((*p, "link"), f"link {link}: the nodes have {have} address(es)")
            return None
        # (The nodes' addresses of one number are of one family: toml_nodes.py checks.)
        index = (link or have) - 1
        return lb.ConnSync(link=index, port=port or 3780, interface=interface)
