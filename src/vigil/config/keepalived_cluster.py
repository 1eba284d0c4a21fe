"""The Cluster made of the vrrp_instances read from keepalived.conf, and the notes that say
where the meaning changed: this node and the peer (from the unicast addresses or the
instance's state), the timings (VRRP's advert interval and Master_Down_Interval), failback
(preempt), the heartbeat links and one group per instance or sync group, its checks and
addresses.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re

from vigil import model
from vigil.config import export
from vigil.config.keepalived_importer import Importer, Instance, InstanceGroup, Script
from vigil.config.keepalived_syntax import title
from vigil.errors import ConfigError


def _group_name(raw: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", raw).lstrip("_.-")[:60] or "group"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _pairs(imp: Importer, usable: list[Instance]) -> list[tuple[model.IPAddress,
                                                                 model.IPAddress, str]]:
    """The unicast heartbeat links: (this node's address, the peer's, the instance's name).
    Reports what two nodes with one address each per link cannot be."""
    pairs: list[tuple[model.IPAddress, model.IPAddress, str]] = []
    for i in usable:
        key = f"{title(i.where)}.unicast_peer"
        if i.src is None or i.peer is None or any((i.src, i.peer) == p[:2] for p in pairs):
            continue
        if i.src == i.peer:
            imp.report(i.where, key, "is unicast_src_ip itself")
        elif i.src.version != i.peer.version:
            imp.report(i.where, key, "unicast_src_ip and unicast_peer differ in family")
        elif clash := [p for p in pairs if {i.src, i.peer} & set(p[:2])]:
            s, p, other = clash[0]
            imp.report(i.where, key, f"{i.src} -> {i.peer} differs from {other}'s {s} -> {p}: "
                                     "vigil supports exactly two nodes, one address each per "
                                     "link")
        else:
            pairs.append((i.src, i.peer, i.name))
    seen = {a: "a node's heartbeat address" for s, p, _ in pairs for a in (s, p)}
    for i in usable:
        for v in i.vips:
            if v.address.ip in seen:
                imp.report(v.where, f"{title(i.where)}.virtual_ipaddress",
                           f"{v.address.ip} is already {seen[v.address.ip]}")
            seen.setdefault(v.address.ip, f"a virtual address of {i.name}")
    return pairs


def build_cluster(imp: Importer, usable: list[Instance],
                  syncs: dict[str, InstanceGroup]) -> tuple[model.Cluster, dict[str, str]]:
    """The cluster, and export.to_toml's notes: by [cluster] key, "mcast" (above the links),
    "group:NAME", and the rest (listed on top)."""
    pairs = _pairs(imp, usable)
    if imp.problems:
        raise ConfigError(sorted(imp.problems, key=lambda p: (p.file != imp.source, p.file,
                                                              p.line or 0)))
    notes: dict[str, str] = {}
    first = usable[0]
    if pairs:
        this, peer = (f"node-{str(a).replace('.', '-').replace(':', '-')}" for a in pairs[0][:2])
        notes["nodes"] = (f"keepalived names no nodes: {this} (this node) and {peer} come from "
                          f"{pairs[0][2]}'s unicast_src_ip and unicast_peer.")
    else:
        this, peer = ("master", "backup") if first.master else ("backup", "master")
        notes["nodes"] = (f"keepalived names no nodes: this node is called {this!r} because "
                          f"{first.name}, the first vrrp_instance, is state "
                          f"{'MASTER' if first.master else 'BACKUP'} here; the peer {peer!r}.")
    notes["nodes"] += " vigil finds its node by `uname -n` (or --node): rename both."
    notes["key_file"] = (f"vigil signs every heartbeat with the key in {export.KEY_FILE} "
                         "(keepalived's authentication { auth_type PASS|AH } is not used): run "
                         f"`vigil keygen {export.KEY_FILE}` on one node and copy the file to "
                         "the other (mode 0600).")
    notes.update((f"{f}:{n}: {what}", why) for f, n, what, why in imp.sorted_dropped())

    advert = min(i.advert for i in usable)
    fastest = min((i for i in usable if i.advert == advert), key=lambda i: i.priority)
    skew = (256 - fastest.priority) / 256 * advert
    deadtime = round((3 * advert + skew) * 1000) / 1000
    notes["keepalive"] = (f"advert_int {advert:g} ({fastest.name}): the master's VRRP advert "
                          "interval; vigil's heartbeats go both ways every keepalive." + (
                              " The instances' advert_int differ: vigil has one keepalive for "
                              "all groups, the shortest is kept."
                              if len({i.advert for i in usable}) > 1 else ""))
    notes["warntime"] = "new: a heartbeat later than this (2 x keepalive) is logged as late."
    notes["deadtime"] = (f"VRRP's Master_Down_Interval, 3 x advert_int + skew, where skew = "
                         f"(256 - priority) / 256 x advert_int = {skew:.3f}s with priority "
                         f"{fastest.priority}. The skew lets the best of several backups act "
                         "first; vigil has one backup and waits the same on both nodes.")
    notes["initdead"] = ("keepalived also waits one Master_Down_Interval after start; vigil's "
                         "default is 3s: raise it if the network comes up slowly at boot.")
    nopreempt = [i.name for i in usable if i.nopreempt]
    notes["auto_failback"] = (
        f"nopreempt ({', '.join(nopreempt)}): keepalived leaves the address where it is when "
        "a higher priority returns; vigil leaves the groups until `vigil takeover` on the "
        "home node." + (" Only some instances set nopreempt: vigil has one auto_failback for "
                        "all groups, and false moves nothing by itself."
                        if len(nopreempt) != len(usable) else "")
        if nopreempt else "keepalived preempts by default: the higher priority takes the "
        "address back when it returns; vigil moves the groups back to their home node.")
    notes["auto_failback"] += "".join(
        f" preempt_delay {i.preempt_delay:g} ({i.name}): vigil has no delay before failback: "
        "with auto_failback = false, run `vigil takeover` on the home node when it is ready."
        for i in usable if i.preempt_delay)

    links: list[model.ExtraLink] = []
    for i in usable:
        if (i.src is None or i.peer is None) and i.interface and all(
                link.interface != i.interface for link in links):
            vrid = i.vrid or len(links) + 1
            maddr = f"239.0.0.{vrid}" if i.vips[0].address.version == 4 else \
                f"ff02::5646:{vrid:x}"
            links.append(model.ExtraLink("mcast", i.interface, ipaddress.ip_address(maddr)))
            notes["mcast"] = notes.get("mcast", "keepalived sends VRRP adverts by multicast "
                                       "(224.0.0.18, ff02::12); vigil's heartbeats use groups of "
                                       "its own (239.0.0.VRID) and UDP port 694.")
            if i.peer is not None:
                notes["mcast"] += (f" {i.name} has unicast_peer but no unicast_src_ip: the "
                                   "file does not say this node's address; add both nodes' "
                                   "to [[node]] address for a unicast link.")
    nodes = sorted((model.Node(this, tuple(s for s, _, _ in pairs)),
                    model.Node(peer, tuple(p for _, p, _ in pairs))), key=lambda n: n.name)

    groups: list[model.Group] = []
    taken: set[str] = set()
    grouped = {id(m): g for g in syncs.values() for m in g.members}
    written: list[InstanceGroup] = []
    for i in usable:  # in file order: a sync group where its first usable member is
        sync = grouped.get(id(i))
        if sync is not None and any(sync is w for w in written):
            continue
        g = InstanceGroup(i.name, [i], i.where) if sync is None else sync
        written.append(g)
        name = _group_name(g.name, taken)
        group, note = _group(dataclasses.replace(g, name=name, members=[
            m for m in g.members if m.vips]), this, peer)
        groups.append(group)
        notes[f"group:{name}"] = note
    timings = model.Timings(advert, 2 * advert, deadtime, deadtime)
    return model.Cluster(_group_name(first.name, set()), export.KEY_FILE, tuple(nodes),
                         tuple(groups), timings, auto_failback=not nopreempt,
                         links=tuple(links)), notes


def _group(g: InstanceGroup, this: str, peer: str) -> tuple[model.Group, str]:
    lead = g.members[0]
    sources = [g.extra, *g.members] if g.extra else g.members
    said = [f"{title(g.where)} ({g.where.file}:{g.where.line})"
            + (f", instances {', '.join(m.name for m in g.members)}" if g.extra else "") + "."]
    if g.where.args and g.name != g.where.args[0]:
        said.append(f"Renamed from {g.where.args[0]!r}: vigil's group names are unique, of "
                    "letters, digits, '_', '.' and '-'.")
    said.append(f"state {'MASTER' if lead.master else 'BACKUP'}, priority {lead.priority} "
                "here: home is " + (f"this node ({this})." if lead.master else
                                    f"the peer ({peer}); its priority is not in this file: "
                                    f"if this machine's is the higher, set home = \"{this}\"."))
    mixed = [m.name for m in g.members if m.master != lead.master]
    if mixed:
        said.append(f"{', '.join(mixed)} have another state: keepalived wants one state for a "
                    "whole sync group.")
    said += [f"{m.name}: {c}." for m in sources for c in m.comments]
    checks: list[tuple[Script, str]] = []
    for m in sources:
        checks += [c for c in m.checks if all(c[0].name != o[0].name for o in checks)]
    resources: list[model.Resource] = []
    for script, how in checks:
        said.append(f"vrrp_script {script.name} is an exec resource whose start and status "
                    f"run the check (a node where it fails does not take the group): {how}.")
        said += [f"{script.name}: {c}." for c in script.comments]
        resources.append(model.ExecResource(
            start=script.argv, stop=("/bin/true",), status=script.argv, timeout=script.timeout,
            monitor=model.Monitor(script.interval, script.timeout)))
    policy = model.GroupPolicy()
    if checks:
        fall = min(100, min(c[0].fall for c in checks))
        policy = model.GroupPolicy(migration_threshold=fall)
        said.append(f"migration_threshold = fall ({fall}): failed checks before the group "
                    "leaves the node.")
    d = model.ArpSettings()
    by_comment: dict[str, list[str]] = {}
    for m in g.members:
        a = m.arp
        arp = model.ArpSettings(int(a.get("arp_count", d.count)),
                                a.get("arp_interval", d.interval),
                                a.get("arp_repeat_delay", d.repeat_delay),
                                int(a.get("arp_count", d.repeat_count)),
                                a.get("arp_refresh", d.refresh))
        if a:
            said.append(f"{m.name}: the arp_* keys come from keepalived's garp_* settings.")
        for v in m.vips:
            for c in v.comments:
                by_comment.setdefault(c, []).append(v.address.with_prefixlen)
            resources.append(model.IpResource(v.address, v.interface, v.label, arp))
    said += [f"{', '.join(addresses)}: {c}." for c, addresses in by_comment.items()]
    return model.Group(g.name, this if lead.master else peer, tuple(resources), policy), \
        " ".join(said)
