"""Traffic per real server, counted by the kernel as IPVS counts it (`ipvsadm -L --stats`:
connections, packets and bytes in and out): named nft counters, three per real server of a
directed service, found through maps keyed by the connection mark (nft.mark):

- `counters_conns`: mark -> the server's new-connection counter, hit once per connection
  (NAT: in the service's chain, which sees only a connection's first packet; direct
  routing: where a connection is hashed to its server);
- NAT, `counters_nat`: direction . mark -> the server's `in` (client to server) or `out`
  counter, hit by every packet the director forwards (a `counting` forward chain);
- direct routing, `counters_in`: mark -> `in`, hit by every packet sent on (the answers go
  from the server to the client directly: there is no `out`).

The counters belong to the table: they start at 0 when it is made (a director that takes a
service over, or a table replaced) and go with it, as Prometheus counters may.
`read` turns `nft -j list counters` into totals per real server. Pure, like nft.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("conns", "in", "out")
CONNS, NAT, DR_IN = "counters_conns", "counters_nat", "counters_in"


def name(n: int, rid: int, kind: str) -> str:
    """The counter object of real server `rid` of service `n`: vs1_2_in."""
    return f"vs{n}_{rid}_{kind}"


@dataclass(frozen=True, slots=True)
class Traffic:
    """One real server's counts since its director's table was made."""

    connections: int = 0
    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0


def read(listing: Iterable[Mapping[str, Any]],
         names: Mapping[str, tuple[Any, str]]) -> dict[Any, Traffic]:
    """Totals per key from `nft -j list counters` objects; `names` maps each counter's name
    to (key, kind). A counter not in `names`, or malformed, is ignored."""
    found: dict[Any, dict[str, int]] = {}
    for item in listing:
        c = item.get("counter") if isinstance(item, Mapping) else None
        if not isinstance(c, Mapping) or c.get("name") not in names:
            continue
        packets, size = c.get("packets"), c.get("bytes")
        if not isinstance(packets, int) or not isinstance(size, int):
            continue
        key, kind = names[c["name"]]
        t = found.setdefault(key, {})
        if kind == "conns":
            t["connections"] = packets
        else:
            t[f"packets_{kind}"], t[f"bytes_{kind}"] = packets, size
    return {k: Traffic(**v) for k, v in found.items()}
