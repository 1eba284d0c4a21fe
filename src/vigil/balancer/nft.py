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
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from vigil.balancer import slots as slotting
from vigil.balancer.model import Endpoint, VirtualServer

_K = TypeVar("_K", bound=Hashable)

TABLE = "vigil_lb"
FAMILY = "inet"
MAX_SERVICES = 0xFFFF
MAX_REAL = 0xFFFF


@dataclass(frozen=True, slots=True)
class Service:
    """One virtual service as the data plane needs it: its number `n` (1..65535), every real
    server's `ids` (1..65535) and the `active` ones (endpoint -> weight > 0) that get new
    connections."""

    vs: VirtualServer
    n: int
    ids: Mapping[Endpoint, int]
    active: Mapping[Endpoint, int]


@dataclass(frozen=True, slots=True)
class MapDecl:
    spec: str  # "typeof numgen inc mod 2 : ct mark", "type ipv4_addr; flags dynamic, ..."
    kind: str = "map"  # map | set
    elements: Mapping[str, str] = field(default_factory=dict)  # rendered key -> value


@dataclass(frozen=True, slots=True)
class Plan:
    maps: Mapping[str, MapDecl]
    chains: Mapping[str, tuple[str, ...]]  # name -> rules; "prerouting", "refusals": base chains


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


def _ip(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def _addr_type(version: int) -> str:
    return "ipv4_addr" if version == 4 else "ipv6_addr"


def _client(vs: VirtualServer) -> str:
    """The client's address under the persistence netmask, as an nft expression."""
    v = vs.family
    bits = 32 if v == 4 else 128
    prefix = vs.persistence_netmask if vs.persistence_netmask is not None else bits
    saddr = f"{_ip(v)} saddr"
    if prefix == bits:
        return saddr
    net = ipaddress.IPv4Network((0, prefix)) if v == 4 else ipaddress.IPv6Network((0, prefix))
    return f"{saddr} and {net.netmask}"


def _match(vs: VirtualServer) -> str:
    if vs.fwmark is not None:
        return f"meta mark {vs.fwmark:#x} meta l4proto {vs.protocol}"
    assert vs.endpoint is not None
    ep = vs.endpoint
    return f"{_ip(ep.address.version)} daddr {ep.address} {vs.protocol} dport {ep.port}"


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
            rules.append(f"meta l4proto {vs.protocol} dnat {_ip(v)} to {sorry}")
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
    client = _client(vs)
    choose = (f"numgen inc mod {size}" if vs.scheduler in ("rr", "wrr")
              else f"jhash {client} mod {size}")
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
    rules.append(f"meta l4proto {vs.protocol} dnat {_ip(v)} addr . port to "
                 f"ct mark map @{name}_real")
    return maps, tuple(rules)


def plan(services: Sequence[Service]) -> Plan:
    maps: dict[str, MapDecl] = {}
    chains: dict[str, tuple[str, ...]] = {}
    entry: list[str] = []
    for s in sorted(services, key=lambda s: s.n):
        if s.vs.forward != "nat":
            raise ValueError(f"virtual server {s.vs.name!r}: forward = {s.vs.forward!r} has no "
                             "data plane yet; only nat")
        if s.vs.scheduler in ("lc", "wlc"):
            raise ValueError(f"virtual server {s.vs.name!r}: nftables has no least-connection "
                             f"scheduler ({s.vs.scheduler}); it needs IPVS, which this kernel "
                             "lacks: use wrr, rr, sh or mh")
        m, rules = _service(s)
        maps.update(m)
        chains[f"vs{s.n}"] = rules
        entry.append(f"{_match(s.vs)} jump vs{s.n}")
    chains["prerouting"] = tuple(entry)
    if any(s.vs.protocol == "tcp" for s in services):
        chains["refusals"] = (REFUSAL_RULE,)
    return Plan(maps=maps, chains=chains)


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
          "refusals": "type filter hook forward priority filter; policy accept;"}


def _elements(name: str, items: Mapping[str, str], kind: str = "map") -> list[str]:
    if not items:
        return []
    out, chunk = [], []
    for k, v in items.items():
        chunk.append(f"{k} : {v}" if kind == "map" else k)
        if len(chunk) == 512:
            out.append(f"add element {FAMILY} {TABLE} {name} {{ {', '.join(chunk)} }}")
            chunk = []
    if chunk:
        out.append(f"add element {FAMILY} {TABLE} {name} {{ {', '.join(chunk)} }}")
    return out


def _declare(name: str, d: MapDecl) -> list[str]:
    return [f"add {d.kind} {FAMILY} {TABLE} {name} {{ {d.spec}; }}",
            *_elements(name, d.elements)]


def _chain(name: str, rules: Sequence[str], new: bool) -> list[str]:
    head = (f"add chain {FAMILY} {TABLE} {name} {{ {_BASES[name]} }}" if name in _BASES
            else f"add chain {FAMILY} {TABLE} {name}")
    out = [head] if new else [f"flush chain {FAMILY} {TABLE} {name}"]
    return out + [f"add rule {FAMILY} {TABLE} {name} {r}" for r in rules]


def remove() -> str:
    """The transaction that takes the whole table away (nothing to take is no error)."""
    return f"add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n"


def transaction(old: Plan | None, new: Plan) -> str:
    """One nft -f transaction from `old` (None: whatever is there) to `new`; "" when equal."""
    if old is None or any(old.maps[k].spec != d.spec or old.maps[k].kind != d.kind
                          for k, d in new.maps.items() if k in old.maps):
        lines = remove().splitlines() + [f"add table {FAMILY} {TABLE}"]
        for name, d in new.maps.items():
            lines += _declare(name, d)
        for name in sorted(new.chains, key=lambda c: c in _BASES):
            lines += _chain(name, new.chains[name], new=True)
        return "\n".join(lines) + "\n"
    lines = []
    for name, d in new.maps.items():
        if name not in old.maps:
            lines += _declare(name, d)
            continue
        before = old.maps[name].elements
        gone = [k for k, v in before.items() if d.elements.get(k) != v]
        if gone:
            lines.append(f"delete element {FAMILY} {TABLE} {name} {{ {', '.join(gone)} }}")
        lines += _elements(name, {k: v for k, v in d.elements.items() if before.get(k) != v})
    order = sorted(new.chains, key=lambda c: c in _BASES)  # the entry chains last
    for name in order:
        if name not in old.chains:
            lines += _chain(name, new.chains[name], new=True)
        elif old.chains[name] != new.chains[name]:
            lines += _chain(name, new.chains[name], new=False)
    for name in old.chains:
        if name not in new.chains:
            lines += [f"flush chain {FAMILY} {TABLE} {name}",
                      f"delete chain {FAMILY} {TABLE} {name}"]
    for name, d in old.maps.items():
        if name not in new.maps:
            lines.append(f"delete {d.kind} {FAMILY} {TABLE} {name}")
    return "\n".join(lines) + "\n" if lines else ""
