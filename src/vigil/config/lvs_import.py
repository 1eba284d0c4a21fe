"""What the LVS importers share (keepalived's virtual_server, ldirectord.cf, ipvsadm-save):
their result, and the translations every one of them needs, each with the note that says
where the meaning changed.

An importer returns an `Imported`: the virtual servers it could carry over, each in the
placeholder group `group` until `assign_groups` gives it the group whose address it is, the
notes (a meaning that changed, per service) and what it dropped (never silently).

Forwarding. IPVS sets the method per real server (masq/NAT, gate/direct routing, ipip/
tunnelling); a vigil service has one, `forward`. Every importer applies the same rules:

- tunnelling has no data plane in vigil: such a server is dropped (`TUNNEL`);
- direct routing needs an address: on a firewall-mark service it is dropped (`FWMARK_DR`);
- the service carries the method of most of its remaining real servers, NAT on a tie
  (`choose_forward`); a server of the other method is dropped, saying so (`one_way`): a
  second virtual server on the same address and port is not possible, so it is not carried;
- direct routing cannot change the port: a server written with another port gets the
  virtual port, where IPVS delivered its packets (ipvsadm and keepalived reset the port so),
  with a note; its check stays on the port written, where ldirectord's and keepalived's
  checks went (`dr_port`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vigil.balancer import model as lb
from vigil.model import Cluster, IpResource

PLACEHOLDER_GROUP = "lvs"
TUNNEL = "IP tunnelling has no data plane in vigil; use gate (dr) or masq (nat)"
FWMARK_DR = ("direct routing matches an address and port where packets come in, before any "
             "mark is set: vigil forwards a firewall-mark service by NAT only")
_WAYS = {"nat": "NAT", "dr": "direct routing"}

# IPVS schedulers -> vigil's, and why when the meaning changes. lc and wlc (ipvsadm's default)
# count connections in IPVS; nftables has no such scheduler: weighted round robin with the
# same weights is the nearest.
_SCHEDULERS: dict[str, tuple[str, str | None]] = {
    "rr": ("rr", None), "wrr": ("wrr", None), "sh": ("sh", None), "mh": ("mh", None),
    **{s: ("wrr", f"IPVS's {s!r} counts connections; vigil's nftables data plane has no "
                  "least-connection scheduler, so weighted round robin with the same weights")
       for s in ("lc", "wlc", "sed", "nq", "fo", "ovf", "lblc", "lblcr")},
    "dh": ("sh", "IPVS's 'dh' hashes the destination; vigil's 'sh' hashes the client (a "
                 "service has one destination address, so 'dh' sent everyone to one server)"),
}


# Service names `ipvsadm-save` (without -n) and ldirectord print for the ports balanced
# most, as /etc/services names them. A fixed table, not getservbyname: an import means the
# same on every machine.
PORTS = {"ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80,
         "www": 80, "pop3": 110, "nntp": 119, "ntp": 123, "imap2": 143, "imap": 143,
         "snmp": 161, "ldap": 389, "https": 443, "submission": 587, "ldaps": 636,
         "imaps": 993, "pop3s": 995, "ms-sql-s": 1433, "radius": 1812, "nfs": 2049,
         "mysql": 3306, "sip": 5060, "postgresql": 5432, "http-alt": 8080, "webcache": 8080}


@dataclass
class Imported:
    services: list[lb.VirtualServer] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)  # service name -> notes
    dropped: list[str] = field(default_factory=list)  # "FILE:LINE: what: why"

    def note(self, service: str, text: str) -> None:
        self.notes.setdefault(service, []).append(text)

    def drop(self, file: str, line: int | None, what: str, why: str) -> None:
        self.dropped.append(f"{file}:{line}: {what}: {why}" if line else f"{file}: {what}: {why}")


def choose_forward(methods: Iterable[lb.Forward]) -> tuple[lb.Forward, bool]:
    """The one method a service carries: that of most of its real servers' `methods` (the
    tunnelled ones already left out), NAT on a tie; and whether it was a tie."""
    counts = Counter(methods)
    return ("dr" if counts["dr"] > counts["nat"] else "nat"), counts["dr"] == counts["nat"]


def one_way(method: lb.Forward, kept: lb.Forward, tie: bool, spelled: Mapping[str, str]) -> str:
    """Why a real server forwarded by `method` is not carried in a service that forwards by
    `kept`; `spelled` names the methods as the imported file does ({"nat": "masq", ...})."""
    def named(m: lb.Forward) -> str:
        return _WAYS[m] if spelled[m] == _WAYS[m] else f"{_WAYS[m]} ({spelled[m]})"
    how = "vigil's choice on a tie" if tie else "as most of its real servers"
    return (f"a vigil service forwards one way: this one by {named(kept)}, {how}; "
            f"{named(method)} is not carried")


def dr_port(rs: lb.RealServer, port: int) -> lb.RealServer:
    """A direct-routing real server on the virtual `port`, as IPVS reached it, its check
    still on the port written (when it checks one)."""
    check = rs.check
    if check.port is None and check.type in ("tcp", "http", "https"):
        check = dataclasses.replace(check, port=rs.endpoint.port)
    return dataclasses.replace(rs, endpoint=lb.Endpoint(rs.endpoint.address, port), check=check)


def scheduler(name: str) -> tuple[str, str | None] | None:
    """An IPVS scheduler's name -> (vigil's scheduler, the note when the meaning changed);
    None when it is not an IPVS scheduler at all."""
    return _SCHEDULERS.get(name.lower())


def prefix_length(text: str, family: int | None = None) -> int:
    """A persistence netmask as the LVS tools write it: dotted (255.255.255.0, IPv4 only)
    or a prefix length, at most 32 for IPv4 and 128 for IPv6 or a family not known yet;
    ValueError saying what was expected."""
    most = 32 if family == 4 else 128
    if text.isdigit() and int(text) <= most:
        return int(text)
    if "." in text and family != 6:
        try:
            return ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
        except ValueError:
            pass
    raise ValueError(f"{text[:40]!r}: expected a netmask such as 255.255.255.0 or a prefix "
                     f"length (at most {most})")


def service_name(endpoint: lb.Endpoint | None, fwmark: int | None, taken: set[str]) -> str:
    """A virtual server's name from its address ("vs-192-168-10-200-80", "fwmark-1"), made
    unique among `taken` (which it joins)."""
    if endpoint is not None:
        base = "vs-" + str(endpoint.address).replace(".", "-").replace(":", "-") + \
               f"-{endpoint.port}"
    else:
        base = f"fwmark-{fwmark}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def assign_groups(imported: Imported, cluster: Cluster | None) -> list[str]:
    """Give each service the group of `cluster` that holds its address (an ip resource with
    that address), in place; the notes for services no group holds (they keep the
    placeholder group, which the user must create or rename)."""
    if cluster is None:
        return [f"virtual server {vs.name}: group {PLACEHOLDER_GROUP!r} is a placeholder: "
                f"set the group whose floating address {vs.describe()} is"
                for vs in imported.services]
    holders: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
    for g in cluster.groups:
        for r in g.resources:
            if isinstance(r, IpResource):
                holders.setdefault(r.address.ip, g.name)
    out, services = [], []
    for vs in imported.services:
        group = holders.get(vs.endpoint.address) if vs.endpoint is not None else None
        if group is None:
            group = cluster.groups[0].name if len(cluster.groups) == 1 else None
            if group is not None:
                out.append(f"virtual server {vs.name}: no group holds its address; given to "
                           f"the only group, {group}")
        if group is None:
            out.append(f"virtual server {vs.name}: no group holds {vs.describe()}: set its "
                       f"group (placeholder {PLACEHOLDER_GROUP!r})")
            group = PLACEHOLDER_GROUP
        services.append(dataclasses.replace(vs, group=group))
    imported.services = services
    return out


def render(imported: Imported, header: str, into: str | None = None,
           into_source: str = "vigil.toml") -> str:
    """The text an LVS import prints. With `into` (a vigil.toml's text): that file with the
    virtual servers appended, each in the group holding its address, checked whole by
    vigil's own parser (ConfigError otherwise). Without: the [[virtual_server]] tables alone,
    in the placeholder group, to add to a vigil.toml."""
    from vigil.config import toml
    from vigil.config.export_virtual import write_virtual_servers
    from vigil.config.toml_write import Writer
    from vigil.errors import ConfigError

    cluster = toml.parse(into, into_source) if into is not None else None
    placed = assign_groups(imported, cluster)
    w = Writer()
    for line in [header, *placed] + (["Not carried over:", *(f"- {d}" for d in
                                                            imported.dropped)]
                                     if imported.dropped else []):
        w.comment(line, indent="  ")
    write_virtual_servers(w, imported.services, {f"virtual_server:{name}": "\n".join(texts)
                                                 for name, texts in imported.notes.items()})
    text = w.text() if into is None else into.rstrip("\n") + "\n\n" + w.text()
    if into is not None:
        try:
            toml.parse(text, f"{into_source} (with the import)")
        except ConfigError as e:
            raise ConfigError([dataclasses.replace(p, message=f"vigil refuses the import: "
                                                   f"{p.message}") for p in e.problems]) from None
    return text
