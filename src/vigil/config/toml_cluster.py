"""The [cluster] table of vigil.toml with its timings, and the Cluster made of the whole
document: `ClusterReader` reads the top level and [cluster], has the other readers read their
parts ([[node]] and [[link]], [[group]], the optional sections) and checks what spans parts
(a heartbeat link at all, the disk fencing's disk link, the witness's name).
"""

from __future__ import annotations

from vigil import model
from vigil.config.locate import KeyPath
from vigil.config.toml_checker import Table
from vigil.config.toml_groups import GroupReader
from vigil.config.toml_nodes import NodeReader
from vigil.config.toml_sections import SectionReader
from vigil.config.toml_sync import SyncReader
from vigil.config.toml_values import (as_addresses, as_bool, as_duration, as_nonempty,
                                       as_path, as_timeout, describe, int_in)
from vigil.config.toml_virtual import VirtualServerReader

_MAX_CLUSTER_NAME = 64  # bytes: wire/frame.py MAX_NAME (config/ does not import wire)
_TOP_KEYS = ("cluster", "node", "link", "group", "virtual_server", "conntrack_sync", "fencing",
             "witness", "respawn", "api", "notify")
_CLUSTER_KEYS = ("name", "key_file", "keepalive", "warntime", "deadtime", "initdead",
                 "auto_failback", "port", "realtime", "log_file", "watchdog",
                 "watchdog_timeout", "ping", "ping_interval", "deadping", "address_probe")


class ClusterReader(NodeReader, GroupReader, SectionReader):
    """The whole document: the top level and [cluster] here, the other parts by the readers
    it is made of."""

    def cluster(self, doc: Table) -> model.Cluster | None:
        self.unknown(doc, (), _TOP_KEYS, "the top level")
        c = doc.get("cluster")
        if not isinstance(c, dict):
            self.report(("cluster",), "missing [cluster] table (it needs name and key_file)"
                        if c is None else f"expected the [cluster] table, found {describe(c)}")
            c = {}
        p: KeyPath = ("cluster",)
        self.unknown(c, p, _CLUSTER_KEYS, "[cluster]")
        required = "cluster" in doc  # else "missing [cluster]" said it all
        name = self.field(c, p, "name", _as_cluster_name, required=required)
        key_file = self.field(c, p, "key_file", as_path, required=required)
        timings = self.timings(c, p)
        auto_failback = self.field(c, p, "auto_failback", as_bool)
        port = self.field(c, p, "port", int_in(1, 65535))
        realtime = self.field(c, p, "realtime", as_bool)
        log_file = self.field(c, p, "log_file", as_path)
        watchdog = self.field(c, p, "watchdog", as_path)
        watchdog_timeout = self.field(c, p, "watchdog_timeout", _as_watchdog_timeout)
        ping = self.field(c, p, "ping", _as_ipv4_addresses)
        ping_interval = self.field(c, p, "ping_interval", as_timeout)
        deadping = self.field(c, p, "deadping", as_timeout)
        address_probe = self.field(c, p, "address_probe", _as_probe_wait)
        ping_interval = ping_interval or 1.0
        deadping = deadping or 3.0
        if deadping < 2 * ping_interval:
            self.report((*p, "deadping"), f"{model.fmt_duration(deadping)} must be at least "
                                          f"twice ping_interval, or one lost reply marks a "
                                          f"ping node unreachable")
        nodes = self.nodes(doc)
        links = self.links(doc)
        if nodes is not None and not links and not any(n.addresses for n in nodes):
            self.report(("node",), "no heartbeat link: give the nodes an address or add a [[link]]")
        groups = self.groups(doc)
        virtual_servers = VirtualServerReader(self).virtual_servers(
            doc, None if groups is None else [g.name for g in groups])
        conntrack_sync = SyncReader(self).conntrack_sync(doc, nodes, virtual_servers)
        fencing = self.fencing(doc, nodes)
        witness = self.witness(doc, timings)
        respawn = self.respawn(doc)
        api = self.api(doc)
        notify = self.notify(doc)
        if fencing is not None and fencing.agent == "disk" and \
                not any(isinstance(l, model.DiskLink) for l in links):
            self.report(("fencing", "agent"), "agent = \"disk\" writes a poison pill through "
                                              "the disk heartbeat: add a [[link]] with mode = "
                                              "\"disk\"")
        if witness is not None and witness.name in (self.node_names or ()):
            self.report(("witness", "name"), f"{witness.name!r} is also a node's name")
        if name is None or key_file is None or nodes is None or groups is None:
            return None
        return model.Cluster(
            name=name, key_file=key_file, nodes=nodes, groups=groups, timings=timings,
            auto_failback=True if auto_failback is None else auto_failback,
            port=port or 694, links=links, realtime=True if realtime is None else realtime,
            log_file=log_file, watchdog=watchdog, watchdog_timeout=watchdog_timeout,
            virtual_servers=virtual_servers, conntrack_sync=conntrack_sync, fencing=fencing,
            witness=witness, respawn=respawn,
            api=api, notify=notify,
            ping=ping or (), ping_interval=ping_interval, deadping=deadping,
            address_probe=0.01 if address_probe is None else address_probe,
            source=self.source,
        )

    def timings(self, c: Table, p: KeyPath) -> model.Timings:
        default = model.Timings()
        before = len(self.problems)
        values = {key: self.field(c, p, key, as_duration)
                  for key in ("keepalive", "warntime", "deadtime", "initdead")}
        t = model.Timings(**{k: getattr(default, k) if v is None else v for k, v in values.items()})
        if len(self.problems) == before:
            for key, message in model.check_timings(t):
                self.report((*p, key), message)
        return t


def _as_cluster_name(v: object) -> str:
    s = as_nonempty(v)
    size = len(s.encode())
    if size > _MAX_CLUSTER_NAME:
        shown = repr(s if len(s) <= 24 else s[:21] + "...")
        raise ValueError(f"{shown} is {size} bytes long (UTF-8); every heartbeat carries the "
                         f"cluster name, in at most {_MAX_CLUSTER_NAME} bytes")
    return s


def _as_watchdog_timeout(v: object) -> int:
    """Linux watchdogs count whole seconds."""
    seconds = as_duration(v)
    if seconds < 1 or seconds != int(seconds):
        raise ValueError(f"a watchdog counts whole seconds (at least 1s), not {v!r}")
    return int(seconds)


def _as_probe_wait(v: object) -> float:
    """How long to listen for another holder of an address before taking it: "0s" (never
    look) or 1ms to 1s; every failover from a silent peer waits this long."""
    seconds = as_duration(v)
    if seconds and not 0.001 <= seconds <= 1.0:
        raise ValueError(f"{v!r}: expected \"0s\" (never look) or 1ms to 1s")
    return seconds


def _as_ipv4_addresses(v: object) -> tuple[model.IPAddress, ...]:
    addresses = as_addresses(v)
    for a in addresses:
        if a.version != 4:
            raise ValueError(f"ping nodes are IPv4 for now, not {a}")
    return addresses
