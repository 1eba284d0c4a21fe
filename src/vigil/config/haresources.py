"""Heartbeat's haresources: one group per logical line, `NODE RESOURCE...`, each resource an
IPaddr/IPaddr2 address (or a bare one), a Filesystem, or a Heartbeat resource script with its
`::` arguments; a group is named after its first resource, as Heartbeat names it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path

from vigil import model
from vigil.config.heartbeat_report import Report, bad_text, read_lines
from vigil.config.heartbeat_values import as_ifname
from vigil.config.names import FSTYPE, MAX_INTERFACE_NAME, SCRIPT


def read_haresources(path: Path, cluster: model.Cluster | None,
                     r: Report) -> tuple[model.Group, ...] | None:
    file, before = str(path), len(r.problems)
    lines = read_lines(path, r)
    if lines is None:
        return None
    nodes = {n.name.lower(): n.name for n in cluster.nodes} if cluster else None
    used = {a: "a ping node" for a in cluster.ping} if cluster else {}
    for link in cluster.links if cluster else ():
        if isinstance(link, model.UcastLink):
            used.update((a, f"a ucast address ({link.interface})") for a in link.peers)
    groups: list[model.Group] = []
    for n, text in _logical_lines(lines):
        if bad_text(text):
            r.error(file, n, "<syntax>", str(bad_text(text)))
            continue
        node, *specs = text.split()
        if nodes is not None and node.lower() not in nodes:
            r.error(file, n, node, f"{node!r} is not a node of ha.cf (its nodes: "
                                   f"{', '.join(nodes.values())})")
        if not specs:
            r.error(file, n, node, "a group needs at least one resource after the node name")
            continue
        resources: list[model.Resource] = []
        for spec in specs:
            res = _resource(file, n, spec, r)
            if isinstance(res, model.IpResource) and res.address.ip in used:
                r.error(file, n, spec, f"{res.address.ip} is already {used[res.address.ip]}")
            elif isinstance(res, model.IpResource):
                used[res.address.ip] = f"used on haresources line {n}"
            if res is not None:
                resources.append(res)
        if nodes is None or node.lower() not in nodes or len(resources) != len(specs):
            continue
        ids: set[str] = set()  # OCF instance ids are unique within a group
        for i, res in enumerate(resources):
            if isinstance(res, model.OcfResource):
                rid, k = res.id, 1
                while rid in ids:
                    k += 1
                    rid = f"{res.id}-{k}"
                ids.add(rid)
                resources[i] = dataclasses.replace(res, id=rid)
        name = _group_name(resources[0], {g.name for g in groups})
        r.note(f"group:{name}", f"haresources:{n}: {text}")
        groups.append(model.Group(name, nodes[node.lower()], tuple(resources)))
    return None if len(r.problems) != before else tuple(groups)


def _logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(first line number, text) per group: comments dropped, `\\` continuations joined."""
    out: list[tuple[int, str]] = []
    start, parts = 0, list[str]()
    for n, raw in enumerate([*lines, ""], start=1):  # "": ends a continuation at EOF
        text = raw.split("#", 1)[0].rstrip()
        if not parts:
            start = n
        parts.append(text.removesuffix("\\"))
        if not text.endswith("\\"):
            if " ".join(parts).strip():
                out.append((start, " ".join(parts).strip()))
            parts = []
    return out


def _resource(file: str, n: int, spec: str, r: Report) -> model.Resource | None:
    script, *args = spec.split("::")
    try:
        if not args and _is_ipv4(script.split("/", 1)[0]):
            return _ip_resource(spec, spec, file, n, r)
        if script in ("IPaddr", "IPaddr2"):
            if len(args) != 1:
                raise ValueError(f"write {script}::ADDRESS/PREFIX/INTERFACE")
            return _ip_resource(args[0], spec, file, n, r)
        if script == "Filesystem":
            return _filesystem(args, spec, file, n, r)
        if not SCRIPT.fullmatch(script):
            raise ValueError(f"{script!r} is not a resource script name (letters, digits, "
                             "'_', '.', '-'; no '/')")
        if "" in args:
            raise ValueError("an argument is empty (two '::' in a row, or one at the end)")
        if script in _LVS_HINTS:
            r.warn(file, n, spec, _LVS_HINTS[script])
        return model.HeartbeatResource(script, tuple(args))
    except ValueError as e:
        r.error(file, n, spec, str(e))
        return None


# Heartbeat's way to balance behind the floating address; vigil balances itself.
_LVS_HINTS = {
    "ipvsadm": "runs the ipvsadm script as Heartbeat did (IPVS rules, which this kernel may "
               "lack, with no health checks); vigil balances with nftables and checks the "
               "servers: `vigil import ipvsadm /etc/sysconfig/ipvsadm` (or an ipvsadm-save "
               "file) writes the rules as [[virtual_server]] tables (docs/balancer.md)",
    "ldirectord": "vigil balances and checks the real servers itself: it reads the file as "
                  "ldirectord would (relative to this directory; ldirectord.cf when none is "
                  "named), its virtual services become this group's virtual servers, and "
                  "ldirectord is not run (docs/balancer.md)",
}


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _ip_resource(arg: str, spec: str, file: str, n: int, r: Report) -> model.IpResource:
    """ip[/prefix[/iface[/broadcast]]] or ip/prefix/broadcast, as IPaddr reads them. A prefix
    length (or netmask) and an interface not written are found at start, as IPaddr found
    them: from the connected route that contains the address (resources/findif.py)."""
    ip, *fields = arg.split("/")
    if len(fields) > 3 or not _is_ipv4(ip):
        raise ValueError(f"{arg!r}: write ADDRESS[/PREFIX[/INTERFACE[/BROADCAST]]] with an "
                         "IPv4 address")
    prefix, iface, brd = (fields + [""])[0], "", None
    if len(fields) == 2 and _is_ipv4(fields[1]):
        brd = fields[1]
    elif len(fields) >= 2:
        iface, brd = fields[1], (fields[2] if len(fields) == 3 else None)
    try:
        address = ipaddress.IPv4Interface(f"{ip}/{prefix or 32}")
    except ValueError:
        raise ValueError(f"{prefix!r} is not a prefix length (0-32) or a netmask") from None
    if address.ip.is_multicast or address.ip.is_unspecified:
        raise ValueError(f"{ip} is not a unicast address")
    interface, _, alias = iface.partition(":")
    if iface:
        as_ifname(interface)
    if alias and len(iface) > MAX_INTERFACE_NAME:
        raise ValueError(f"label {iface!r} is longer than 15 characters")
    if brd is not None and not _is_ipv4(brd):
        raise ValueError(f"{brd!r} is not a broadcast address")
    broadcast = None if brd is None else ipaddress.IPv4Address(brd)
    if broadcast is not None and prefix and broadcast not in address.network:
        raise ValueError(f"broadcast {brd} is not in {address.network}")
    return model.IpResource(address, interface or None, label=iface if alias else None,
                            prefix_given=bool(prefix), broadcast=broadcast)


def _filesystem(args: list[str], spec: str, file: str, n: int, r: Report) -> model.Resource:
    if not 3 <= len(args) <= 4 or "" in args:
        raise ValueError("write Filesystem::DEVICE::MOUNTPOINT::FSTYPE[::OPTIONS], e.g. "
                         "Filesystem::/dev/sdb5::/webdata::ext3")
    device, mountpoint, fstype, *options = args
    if not mountpoint.startswith("/") or Path(mountpoint) == Path("/"):
        raise ValueError(f"{mountpoint!r}: the mount point must be an absolute path other "
                         "than /")
    if not FSTYPE.fullmatch(fstype):
        raise ValueError(f"{fstype!r} is not a filesystem type such as ext4")
    if not device.startswith("/"):  # LABEL=, UUID=, -L, -U, host:/path, //host/share
        r.warn(file, n, spec, f"{device}: vigil's built-in filesystem resource takes a device "
                              f"path; this one runs resource-agents' ocf:heartbeat:Filesystem")
        params = (("device", device), ("directory", mountpoint), ("fstype", fstype),
                  *(("options", o) for o in options))
        rid = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"fs{mountpoint}").rstrip("-_.")[:63]
        return model.OcfResource("heartbeat:Filesystem", rid, params)
    return model.FilesystemResource(Path(device), Path(mountpoint), fstype,
                                    options[0] if options else "")


def _group_name(first: model.Resource, taken: set[str]) -> str:
    """Heartbeat names a group by its first resource; this is a valid vigil name for it."""
    if isinstance(first, model.IpResource):
        base = str(first.address.ip)
    elif isinstance(first, model.FilesystemResource):
        base = f"fs-{first.mountpoint.name}"
    elif isinstance(first, model.OcfResource):
        base = first.id
    else:
        assert isinstance(first, model.HeartbeatResource)
        base = "-".join((first.script, *first.args))
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-_.")[:56].rstrip("-_.") or "group"
    name, count = base, 1
    while name in taken:
        count += 1
        name = f"{base}-{count}"
    return name
