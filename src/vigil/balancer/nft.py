"""The nftables ruleset that makes a director of this node, and the smallest transaction
from one ruleset to the next.

`plan` turns the virtual services, each with the real servers that take new connections,
into a `Plan`: one `inet vigil_lb` table, a nat prerouting chain that sends each service's
new connections to its own chain, and per service (numbered `n`, the identifiers are
`vs<n>_...`, the service's name is in a comment):

- `vs<n>_slots`: slot -> connection mark, the table of slots.py, indexed by `numgen inc`
  (rr, wrr) or `jhash` of the client's address (sh, mh);
- `vs<n>_real`: connection mark -> real server address . port, which `dnat` reads;
- with persistence, `vs<n>_p<id>`: a dynamic set of the clients (address under the
  persistence netmask) each real server served, entries expiring after `persistence`.

With TCP services, a forward filter chain `refusals` logs to NFLOG the resets real servers
send for connections that never got established (passive detection: passive.py).

A connection's mark is `n << 16 | id`: `id` is the real server's own number, kept by the
caller across reloads (`numbering`), so that a change of weight or health rewrites only the
slots that change owner and never a mark that an established connection or a persistence
entry still carries. The nat chains see only a connection's first packet; conntrack keeps
the translation, so rewriting a chain or a map never moves an established connection.

`transaction(old, new)` is the text of one `nft -f` transaction (libnftables applies it
whole or not at all): the table replaced when `old` is None, else only the chains whose rules
changed, the maps and sets that came or went, and the map elements that differ.

Why libnftables' native syntax and not its JSON input: Debian 12's nft 1.0.6 cannot express
in JSON a `typeof` map (numgen keys), a dynamic set, or a map whose data is address . port
(tested: "Invalid map type 'ipv4_addr . inet_service'", "Invalid set flag", and a crash), and
all three are what this ruleset is made of. The text is generated from checked values only
(addresses from `ipaddress`, integers, identifiers made here), and `nft -j list` reads the
result back as JSON. Pure: apply.py runs it.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from vigil.balancer import counters
from vigil.balancer import slots as slotting
from vigil.balancer.model import Endpoint, VirtualServer, lc_refused

_K = TypeVar("_K", bound=Hashable)

TABLE = "vigil_lb"
FAMILY = "inet"
MAX_SERVICES = 0xFFFF
MAX_REAL = 0xFFFF


@dataclass(frozen=True, slots=True)
class Service:
    """One virtual service as the data plane needs it: its number `n` (1..65535), every real
    server's `ids` (1..65535), the `active` ones (endpoint -> weight > 0) that get new
    connections and those `gone`."""

    vs: VirtualServer
    n: int
    ids: Mapping[Endpoint, int]
    active: Mapping[Endpoint, int]
    # Failed servers of a service that is not quiescent: their established connections are
    # not kept (nft_dr.py forgets them; the daemon flushes their conntrack entries).
    gone: frozenset[Endpoint] = frozenset()


@dataclass(frozen=True, slots=True)
class MapDecl:
    """A map, a set or a named counter (`spec` "") of a table."""

    spec: str  # "typeof numgen inc mod 2 : ct mark", "type ipv4_addr; flags dynamic, ..."
    kind: str = "map"  # map | set | counter
    elements: Mapping[str, str] = field(default_factory=dict)  # rendered key -> value


@dataclass(frozen=True, slots=True)
class Plan:
    """One table's content: its maps and sets, its chains (name -> rules) and, for the base
    chains among them, their hooks (name -> "type nat hook prerouting ...;")."""

    maps: Mapping[str, MapDecl]
    chains: Mapping[str, tuple[str, ...]]
    bases: Mapping[str, str] = field(default_factory=dict)
    family: str = FAMILY
    table: str = TABLE


def numbering(names: Sequence[_K], previous: Mapping[_K, int], limit: int) -> dict[_K, int]:
    """Numbers 1..limit for `names`: each keeps its number from `previous`; a new one gets
    the lowest number `previous` did not hold at all (so that a number freed by this very
    change is not given to another in the same transaction), else the lowest free.
    ValueError when there are more names than numbers."""
    out = {k: previous[k] for k in names if k in previous}
    held = set(previous.values())
    fresh = (i for i in range(1, limit + 1) if i not in held)
    for k in names:
        if k in out:
            continue
        n = next(fresh, None)
        if n is None:
            used = set(out.values())
            n = next((i for i in range(1, limit + 1) if i not in used), None)
            if n is None:
                raise ValueError(f"more than {limit} to number")
        out[k] = n
    return out


def mark(n: int, real_id: int) -> int:
    return n << 16 | real_id


def ipf(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def _addr_type(version: int) -> str:
    return "ipv4_addr" if version == 4 else "ipv6_addr"


def seed(vs: VirtualServer) -> int:
    """jhash's seed for a service: without one the kernel draws a random seed for each rule,
    so two directors (or one after a reload) would hash a client to different slots. From
    the service's own description, the same on every director; not a secret (a client that
    chooses its ports could aim at one server either way, as with IPVS's sh)."""
    return zlib.crc32(f"vigil {vs.describe()}".encode())


def client_key(vs: VirtualServer) -> str:
    """The client's address under the persistence netmask, as an nft expression."""
    v = vs.family
    bits = 32 if v == 4 else 128
    prefix = vs.persistence_netmask if vs.persistence_netmask is not None else bits
    saddr = f"{ipf(v)} saddr"
    if prefix == bits:
        return saddr
    net = ipaddress.IPv4Network((0, prefix)) if v == 4 else ipaddress.IPv6Network((0, prefix))
    return f"{saddr} and {net.netmask}"


def _match(vs: VirtualServer) -> str:
    if vs.fwmark is not None:
        return f"meta mark {vs.fwmark:#x} meta l4proto {vs.protocol}"
    assert vs.endpoint is not None
    ep = vs.endpoint
    return f"{ipf(ep.address.version)} daddr {ep.address} {vs.protocol} dport {ep.port}"


def _endpoint(ep: Endpoint) -> str:
    return f"{ep.address} . {ep.port}"


def _service(s: Service) -> tuple[dict[str, MapDecl], tuple[str, ...]]:
    vs, n, v = s.vs, s.n, s.vs.family
    name = f"vs{n}"
    maps: dict[str, MapDecl] = {}
    maps[f"{name}_real"] = MapDecl(
        f"type mark : {_addr_type(v)} . inet_service",
        elements={f"{mark(n, s.ids[r.endpoint]):#010x}": _endpoint(r.endpoint)
                  for r in vs.real})
    rules: list[str] = []
    if len(s.active) < max(vs.quorum, 1):
        sorry = vs.sorry_server
        if sorry is not None and sorry.address.is_loopback:
            # the director serves itself (ldirectord's fallback 127.0.0.1)
            rules.append(f"meta l4proto {vs.protocol} redirect to :{sorry.port}")
        elif sorry is not None:
            rules.append(f"meta l4proto {vs.protocol} dnat {ipf(v)} to {sorry}")
        else:  # nobody to serve: refuse at once rather than let clients time out
            rules.append("meta l4proto tcp reject with tcp reset" if vs.protocol == "tcp"
                         else "reject")
        return maps, tuple(rules)
    size = slotting.size_for(len(s.active))
    weights = {str(ep): w for ep, w in s.active.items()}
    by_key = {str(ep): ep for ep in s.active}
    fill = slotting.maglev if vs.scheduler in ("sh", "mh") else slotting.interleaved
    table = fill(weights, size)
    maps[f"{name}_slots"] = MapDecl(
        "typeof numgen inc mod 2 : ct mark",
        elements={str(i): f"{mark(n, s.ids[by_key[k]]):#010x}" for i, k in enumerate(table)})
    client = client_key(vs)
    choose = (f"numgen inc mod {size}" if vs.scheduler in ("rr", "wrr")
              else f"jhash {client} mod {size} seed {seed(vs):#010x}")
    active = sorted(s.active, key=lambda ep: s.ids[ep])
    if vs.persistence is not None:
        timeout = max(1, round(vs.persistence))
        for ep in active:
            rid = s.ids[ep]
            maps[f"{name}_p{rid}"] = MapDecl(
                f"type {_addr_type(v)}; flags dynamic, timeout; timeout {timeout}s", kind="set")
            rules.append(f"{client} @{name}_p{rid} ct mark set {mark(n, rid):#010x}")
        rules.append(f"ct mark and 0xffff0000 != {mark(n, 0):#010x} "
                     f"ct mark set {choose} map @{name}_slots")
        for ep in active:
            rid = s.ids[ep]
            rules.append(f"ct mark {mark(n, rid):#010x} update @{name}_p{rid} {{ {client} }}")
    else:
        rules.append(f"ct mark set {choose} map @{name}_slots")
    rules.append(f"counter name ct mark map @{counters.CONNS}")
    rules.append(f"meta l4proto {vs.protocol} dnat {ipf(v)} addr . port to "
                 f"ct mark map @{name}_real")
    return maps, tuple(rules)


def refuse_lc(vs: VirtualServer) -> None:
    """ValueError for a least-connection scheduler, which nftables lacks (one sentence, also
    the config reader's)."""
    if vs.scheduler in ("lc", "wlc"):
        raise ValueError(f"virtual server {vs.name!r}: {lc_refused(vs.scheduler)}")


def plan(services: Sequence[Service]) -> Plan:
    maps = traffic(services, ("conns", "in", "out"))
    chains: dict[str, tuple[str, ...]] = {}
    entry: list[str] = []
    nat: dict[str, str] = {}
    for s in sorted(services, key=lambda s: s.n):
        if s.vs.forward != "nat":
            raise ValueError(f"virtual server {s.vs.name!r}: forward = {s.vs.forward!r} is "
                             "nft_dr.py's")
        refuse_lc(s.vs)
        m, rules = _service(s)
        maps.update(m)
        chains[f"vs{s.n}"] = rules
        entry.append(f"{_match(s.vs)} jump vs{s.n}")
        for r in s.vs.real:
            rid = s.ids[r.endpoint]
            for direction, kind in (("original", "in"), ("reply", "out")):
                nat[f"{direction} . {mark(s.n, rid):#010x}"] = \
                    f'"{counters.name(s.n, rid, kind)}"'
    maps[counters.NAT] = MapDecl("type ct_dir . mark : counter", elements=nat)
    chains["prerouting"] = tuple(entry)
    chains["counting"] = (f"counter name ct direction . ct mark map @{counters.NAT}",)
    if any(s.vs.protocol == "tcp" for s in services):
        chains["refusals"] = (REFUSAL_RULE,)
    return Plan(maps=maps, chains=chains, bases={k: v for k, v in _BASES.items() if k in chains})


def traffic(services: Sequence[Service], kinds: Sequence[str]) -> dict[str, MapDecl]:
    """The counters of every real server of `services` (counters.py), and the map from a
    connection's mark to its server's connection counter; the counters first, as a
    transaction must make them before a map names them."""
    out: dict[str, MapDecl] = {}
    conns: dict[str, str] = {}
    for s in services:
        for r in s.vs.real:
            rid = s.ids[r.endpoint]
            for kind in kinds:
                out[counters.name(s.n, rid, kind)] = MapDecl("", kind="counter")
            conns[f"{mark(s.n, rid):#010x}"] = f'"{counters.name(s.n, rid, "conns")}"'
    out[counters.CONNS] = MapDecl("type mark : counter", elements=conns)
    return out


# Passive detection (passive.py): a reset a real server sends back through this director for
# a connection that never got established is a refusal (its service is down, or its host
# dropped the port); it goes to NFLOG_GROUP with the connection's mark as the packet's mark,
# at most 1000 a second, each at once (queue-threshold 1). Connections that were established
# and reset later are not refusals.
NFLOG_GROUP = 4242
REFUSAL_RULE = ("ct direction reply ct mark and 0xffff0000 != 0 tcp flags rst "
                "ct status & assured == 0 meta mark set ct mark "
                f"limit rate 1000/second burst 100 packets log group {NFLOG_GROUP} "
                "queue-threshold 1")
_BASES = {"prerouting": "type nat hook prerouting priority dstnat; policy accept;",
          "counting": "type filter hook forward priority filter; policy accept;",
          "refusals": "type filter hook forward priority filter; policy accept;"}


def _elements(p: Plan, name: str, items: Mapping[str, str], kind: str = "map") -> list[str]:
    if not items:
        return []
    out, chunk = [], []
    for k, v in items.items():
        chunk.append(f"{k} : {v}" if kind == "map" else k)
        if len(chunk) == 512:
            out.append(f"add element {p.family} {p.table} {name} {{ {', '.join(chunk)} }}")
            chunk = []
    if chunk:
        out.append(f"add element {p.family} {p.table} {name} {{ {', '.join(chunk)} }}")
    return out


def _declare(p: Plan, name: str, d: MapDecl) -> list[str]:
    if d.kind == "counter":
        return [f"add counter {p.family} {p.table} {name}"]
    return [f"add {d.kind} {p.family} {p.table} {name} {{ {d.spec}; }}",
            *_elements(p, name, d.elements, d.kind)]


def _chain(p: Plan, name: str, new: bool) -> list[str]:
    head = (f"add chain {p.family} {p.table} {name} {{ {p.bases[name]} }}" if name in p.bases
            else f"add chain {p.family} {p.table} {name}")
    out = [head] if new else [f"flush chain {p.family} {p.table} {name}"]
    return out + [f"add rule {p.family} {p.table} {name} {r}" for r in p.chains[name]]


def remove(family: str = FAMILY, table: str = TABLE) -> str:
    """The transaction that takes a whole table away (nothing to take is no error)."""
    return f"add table {family} {table}\ndelete table {family} {table}\n"


def transaction(old: Plan | None, new: Plan) -> str:
    """One nft -f transaction from `old` (None: whatever is there) to `new`, both of one
    table; "" when equal. The table is replaced when a map or set changes its type or a
    chain its hook (nftables changes neither in place)."""
    if old is None or any(old.maps[k].spec != d.spec or old.maps[k].kind != d.kind
                          for k, d in new.maps.items() if k in old.maps) \
            or any(old.bases.get(c) != new.bases.get(c) for c in new.chains if c in old.chains):
        lines = remove(new.family, new.table).splitlines() + \
            [f"add table {new.family} {new.table}"]
        for name, d in new.maps.items():
            lines += _declare(new, name, d)
        for name in sorted(new.chains, key=lambda c: c in new.bases):
            lines += _chain(new, name, new=True)
        return "\n".join(lines) + "\n"
    at = f"{new.family} {new.table}"
    lines = []
    for name, d in new.maps.items():
        if name not in old.maps:
            lines += _declare(new, name, d)
            continue
        before = old.maps[name].elements
        gone = [k for k, v in before.items() if d.elements.get(k) != v]
        if gone:
            lines.append(f"delete element {at} {name} {{ {', '.join(gone)} }}")
        lines += _elements(new, name, {k: v for k, v in d.elements.items()
                                       if before.get(k) != v}, d.kind)
    for name in sorted(new.chains, key=lambda c: c in new.bases):  # the entry chains last
        if name not in old.chains:
            lines += _chain(new, name, new=True)
        elif old.chains[name] != new.chains[name]:
            lines += _chain(new, name, new=False)
    for name in old.chains:
        if name not in new.chains:
            lines += [f"flush chain {at} {name}", f"delete chain {at} {name}"]
    # counters last: a map's elements may name them until the map goes
    for name, d in sorted(old.maps.items(), key=lambda i: i[1].kind == "counter"):
        if name not in new.maps:
            lines.append(f"delete {d.kind} {at} {name}")
    return "\n".join(lines) + "\n" if lines else ""
