"""The [[node]] and [[link]] tables of vigil.toml: the two nodes with their heartbeat
addresses, and the other heartbeat links (mcast, bcast, ucast, disk, serial) with what each
mode takes.
"""

from __future__ import annotations

from pathlib import Path

from vigil import model
from vigil.config.toml_checker import Checker, Table
from vigil.config.toml_values import (as_addresses, as_device, as_ifname, as_mcast_group,
                                       as_name, describe, int_in)

_NODE_KEYS = ("name", "address")
_LINK_KEYS = ("mode", "interface", "group", "ttl", "device", "baud", "peers")
_LINK_MODE_KEYS = {"mcast": ("mode", "interface", "group", "ttl"), "bcast": ("mode", "interface"),
                   "disk": ("mode", "device"), "serial": ("mode", "device", "baud"),
                   "ucast": ("mode", "interface", "peers")}


class NodeReader(Checker):
    """[[node]] and [[link]]; `nodes` records the names and heartbeat addresses."""

    def nodes(self, doc: Table) -> tuple[model.Node, ...] | None:
        entries = self.tables(doc, "node", "[[node]]")
        if len(entries) != 2 and isinstance(doc.get("node", []), list):
            self.report(("node",),
                        f"vigil supports exactly two nodes for now; found {len(entries)}")
        before = len(self.problems)
        nodes: list[model.Node] = []
        where: dict[model.IPAddress, str] = {}
        for p, t in entries:
            self.unknown(t, p, _NODE_KEYS, "[[node]]")
            name = self.field(t, p, "name", as_name, required=True)
            addresses = self.field(t, p, "address", as_addresses) or ()
            if name is None:
                self.node_names = None
                continue
            if any(n.name == name for n in nodes):
                self.report((*p, "name"), f"node {name!r} is defined twice")
            for addr in addresses:
                if addr in where:
                    self.report((*p, "address"), f"{addr} is already used by {where[addr]}")
                where.setdefault(addr, f"node {name}")
                self.heartbeat_addresses.setdefault(addr, f"node {name} (heartbeat address)")
            if nodes and len(addresses) != len(nodes[0].addresses):
                self.report((*p, "address"), f"node {name} has {len(addresses)} address(es) but "
                            f"node {nodes[0].name} has {len(nodes[0].addresses)}; every node "
                            "needs one address per heartbeat link")
            elif nodes:
                for n, (mine, first) in enumerate(zip(addresses, nodes[0].addresses)):
                    if mine.version != first.version:
                        self.report((*p, "address"), f"heartbeat link {n}: {mine} is "
                                    f"IPv{mine.version} but node {nodes[0].name} uses "
                                    f"IPv{first.version} ({first})")
            nodes.append(model.Node(name=name, addresses=addresses))
            if self.node_names is not None:
                self.node_names.append(name)
        if len(self.problems) != before or len(entries) != 2:
            return None
        return tuple(nodes)

    def links(self, doc: Table) -> tuple[model.AnyLink, ...]:
        links: list[model.AnyLink] = []
        devices: set[Path] = set()
        for p, t in self.tables(doc, "link", "[[link]]"):
            self.unknown(t, p, _LINK_KEYS, "[[link]]")
            mode = self.field(t, p, "mode", _mode, required=True)
            if mode is None:
                continue
            for key in t:
                if key in _LINK_KEYS and key not in _LINK_MODE_KEYS[mode]:
                    self.report((*p, key), f"{key!r} is not a key of {mode} links (they take "
                                           f"{', '.join(_LINK_MODE_KEYS[mode][1:])})")
            if mode in ("disk", "serial"):
                found = self.field(t, p, "device", _as_devices, required=True)
                baud = self.field(t, p, "baud", _as_baud)
                if found is None:
                    continue
                device, per_node = found
                for node, _ in per_node:
                    if self.node_names is not None and node not in self.node_names:
                        self.report((*p, "device", node), f"no node named {node!r}")
                missing = [n for n in self.node_names or () if per_node and
                           n not in dict(per_node)]
                if missing:
                    self.report((*p, "device"), f"a table of devices must name every node; "
                                                f"missing: {', '.join(missing)}")
                for d in {device, *(d for _, d in per_node)}:
                    if d in devices:
                        self.report((*p, "device"), f"{d} is used by two links")
                    devices.add(d)
                links.append(model.DiskLink(device, per_node=per_node) if mode == "disk"
                             else model.SerialLink(device, baud or 19200, per_node=per_node))
                continue
            interface = self.field(t, p, "interface", as_ifname, required=True)
            if mode == "ucast":  # Heartbeat's ucast lines for one interface (imports)
                peers = self.field(t, p, "peers", as_addresses, required=True)
                if interface is not None and peers:
                    links.append(model.UcastLink(interface, peers))
                elif peers == ():
                    self.report((*p, "peers"), "a ucast link needs at least one address")
                continue
            group = ttl = None
            if mode == "mcast":
                group = self.field(t, p, "group", as_mcast_group, required=True)
                ttl = self.field(t, p, "ttl", int_in(1, 255))
            if interface is not None:
                links.append(model.ExtraLink(mode="mcast" if mode == "mcast" else "bcast", interface=interface, group=group,
                                             ttl=1 if ttl is None else ttl))
        return tuple(links)


def _mode(v: object) -> str:
    if isinstance(v, str) and v in _LINK_MODE_KEYS:
        return v
    raise ValueError(f'expected "mcast", "bcast", "ucast", "disk" or "serial", found {describe(v)}')


def _as_devices(v: object) -> tuple[Path, tuple[tuple[str, Path], ...]]:
    """One path for every node, or a table of them by node name (the first is the default,
    for messages only: every node must be listed)."""
    if isinstance(v, dict):
        if not v:
            raise ValueError("the table of devices by node is empty")
        pairs = tuple((as_name(k), as_device(d)) for k, d in v.items())
        return pairs[0][1], pairs
    return as_device(v), ()


def _as_baud(v: object) -> int:
    if type(v) is not int or v not in model.SERIAL_BAUDS:
        raise ValueError(f"baud must be one of {', '.join(map(str, model.SERIAL_BAUDS))}, "
                         f"found {describe(v)}")
    return v
