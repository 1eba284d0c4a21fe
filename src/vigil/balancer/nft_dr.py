"""Direct routing (LVS's gate, ldirectord's `gate`, keepalived's `lb_kind DR`): the
director rewrites only the destination MAC address of a client's packet and sends it on to
a real server that holds the virtual address on its loopback; the server answers the client
directly, so the director sees one direction only and keeps no connection state of the
kernel's (conntrack never sees these packets).

One `netdev vigil_dr` table, one ingress base chain per interface clients come in on
(`in<k>`), and per service `n` (the numbers are nft.py's, the marks too):

- `vs<n>_slots`: slot -> mark, weighted Maglev (slots.py) for every scheduler, since a
  stateless director must send every packet of a connection to the same server: rr and wrr
  hash the client's address and port, sh and mh (and any service with persistence) the
  client's address only. Both directors compute the same table, so a connection survives a
  takeover when their views of health agree.
- `vs<n>_real`: mark -> real server address; `fwd ip to` lets the kernel's neighbour table
  find its MAC address on the interface `egress`.
- `vs<n>_flows`: connection (client address . port; with persistence the client under its
  netmask) -> mark, filled by the first packet and refreshed by each one, so that a
  connection stays with its server when the slots change (a reload, a server drained or
  coming back) and only a connection whose server is gone from `vs<n>_real` is hashed
  anew. Entries expire after `FLOW_TIMEOUT` idle seconds (or the persistence timeout); a
  full map only means that new connections are hashed without being pinned.

A server leaves `vs<n>_slots` when it takes no new connection and `vs<n>_real` only when it
failed and the service is not `quiescent`, so that a drain keeps its connections. Below
quorum the pinned connections go on and new ones go to the sorry server (a loopback one:
the director itself, which holds the address) or are refused.
Pure, like nft.py: the same Plan and transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vigil.balancer import counters
from vigil.balancer import slots as slotting
from vigil.balancer.model import VirtualServer
from vigil.balancer.nft import (MapDecl, Plan, Service, client_key, ipf, mark, refuse_lc,
                                seed, traffic)

TABLE = "vigil_dr"
FAMILY = "netdev"
FLOW_TIMEOUT = 300  # seconds a connection stays pinned without a packet
FLOW_SIZE = 262144  # connections pinned per service at most (about 30 MB at worst)
_IFNAME = re.compile(r"[A-Za-z0-9_.:@+-]{1,15}\Z")


@dataclass(frozen=True, slots=True)
class Wiring:
    """Where a DR service's packets come in (`ingress`) and where its real servers are on
    the link (`egress`); the same interface on the usual one-LAN director."""

    ingress: str
    egress: str


def _keys(vs: VirtualServer) -> tuple[str, str, str, int]:
    """The flow key (expression, type), the hash key, and the flows' idle timeout."""
    v = vs.family
    addr = "ipv4_addr" if v == 4 else "ipv6_addr"
    if vs.persistence is not None:
        client = client_key(vs)
        return client, addr, client, max(1, round(vs.persistence))
    conn = f"{ipf(v)} saddr . {vs.protocol} sport"
    hashed = f"{ipf(v)} saddr" if vs.scheduler in ("sh", "mh") else conn
    return conn, f"{addr} . inet_service", hashed, FLOW_TIMEOUT


def _service(s: Service, egress: str) -> tuple[dict[str, MapDecl], tuple[str, ...]]:
    vs, n, v = s.vs, s.n, s.vs.family
    name, fam = f"vs{n}", ipf(v)
    dev = f'device "{egress}"'
    key, key_type, hashed, timeout = _keys(vs)
    maps = {
        f"{name}_real": MapDecl(
            f"type mark : {'ipv4_addr' if v == 4 else 'ipv6_addr'}",
            elements={f"{mark(n, s.ids[r.endpoint]):#010x}": str(r.endpoint.address)
                      for r in vs.real if r.endpoint not in s.gone}),
        f"{name}_flows": MapDecl(
            f"type {key_type} : mark; size {FLOW_SIZE}; flags dynamic, timeout; "
            f"timeout {timeout}s")}
    count = f"counter name meta mark map @{counters.DR_IN}"
    fwd = f"{count} fwd {fam} to meta mark map @{name}_real {dev}"
    update = f"update @{name}_flows {{ {key} : meta mark }}"
    pinned = ("meta mark set 0x0",
              f"meta mark set {key} map @{name}_flows",
              f"meta mark != 0x0 {update} {fwd}")  # pinned, and its server still there
    if len(s.active) < max(vs.quorum, 1):  # new connections: the sorry server, or refused
        sorry = vs.sorry_server
        if sorry is not None and sorry.address.is_loopback:
            return maps, (*pinned, "accept")  # the director answers on the address itself
        if sorry is not None:
            return maps, (*pinned, f"fwd {fam} to {sorry.address} {dev}")
        return maps, (*pinned, "meta l4proto tcp reject with tcp reset"
                      if vs.protocol == "tcp" else "drop")
    size = slotting.size_for(len(s.active))
    by_key = {str(ep): ep for ep in s.active}
    table = slotting.maglev({str(ep): w for ep, w in s.active.items()}, size)
    maps[f"{name}_slots"] = MapDecl(
        "typeof numgen inc mod 2 : meta mark",
        elements={str(i): f"{mark(n, s.ids[by_key[k]]):#010x}" for i, k in enumerate(table)})
    return maps, (*pinned, f"meta mark set jhash {hashed} mod {size} seed {seed(vs):#010x} "
                  f"map @{name}_slots",
                  f"{update} counter name meta mark map @{counters.CONNS}", fwd)


def _match(vs: VirtualServer) -> str:
    assert vs.endpoint is not None  # the config reader refuses fwmark with dr
    ep = vs.endpoint
    return f"{ipf(ep.address.version)} daddr {ep.address} {vs.protocol} dport {ep.port}"


def plan(services: Sequence[Service], wiring: Mapping[int, Wiring]) -> Plan:
    """The netdev table for the DR `services`, each wired by `wiring[service.n]`."""
    maps = traffic(services, ("conns", "in"))
    maps[counters.DR_IN] = MapDecl("type mark : counter", elements={
        f"{mark(s.n, rid):#010x}": f'"{counters.name(s.n, rid, "in")}"'
        for s in services for rid in (s.ids[r.endpoint] for r in s.vs.real)})
    chains: dict[str, tuple[str, ...]] = {}
    entries: dict[str, list[str]] = {}
    for s in sorted(services, key=lambda s: s.n):
        vs = s.vs
        if vs.forward != "dr" or vs.endpoint is None:
            raise ValueError(f"virtual server {vs.name!r}: not a direct-routing service on "
                             "an address")
        refuse_lc(vs)
        w = wiring[s.n]
        for dev in (w.ingress, w.egress):
            if not _IFNAME.match(dev):
                raise ValueError(f"virtual server {vs.name!r}: {dev!r} is not an interface "
                                 "name")
        m, rules = _service(s, w.egress)
        maps.update(m)
        chains[f"vs{s.n}"] = rules
        entries.setdefault(w.ingress, []).append(f"{_match(vs)} jump vs{s.n}")
    bases = {}
    for k, dev in enumerate(sorted(entries), 1):
        chains[f"in{k}"] = tuple(entries[dev])
        bases[f"in{k}"] = f'type filter hook ingress device "{dev}" priority 0; policy accept;'
    return Plan(maps=maps, chains=chains, bases=bases, family=FAMILY, table=TABLE)
