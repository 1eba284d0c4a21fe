"""Where a floating address goes when the configuration does not say: Heartbeat's findif.

Heartbeat's `IPaddr::192.168.10.200` (seed 000's haresources) names neither an interface nor
a netmask: IPaddr looks for the connected route that contains the address and puts it on
that route's interface with that route's prefix length. vigil does the same, at the start of
the resource, on the node: the most specific route of the main table that is directly
connected (no gateway, unicast, link scope) and contains the address. No such route: a clear
error that names the address and this node's interfaces and subnets, and nothing is guessed.

`choose()` decides from the routes (no IO, tested alone); `find()` asks the kernel.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from vigil.model import IPAddress, IPInterface

RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RT_SCOPE_LINK = 253


@dataclass(frozen=True, slots=True)
class Route:
    dst: ipaddress.IPv4Network | ipaddress.IPv6Network
    ifindex: int
    gateway: bool  # via a router: not where the address lives
    table: int = RT_TABLE_MAIN
    kind: int = RTN_UNICAST
    scope: int = RT_SCOPE_LINK


@dataclass(frozen=True, slots=True)
class Place:
    """Where the address goes: the interface (index and name) and the address with the
    route's prefix length."""

    ifindex: int
    ifname: str
    address: IPInterface
    route: str  # the route it came from, for the log


class NotFound(Exception):
    """No connected route contains the address (the message says what this node has)."""


def choose(routes: list[Route], ip: IPAddress) -> Route | None:
    """The most specific connected route of the main table that contains `ip`."""
    fits = [r for r in routes if r.table == RT_TABLE_MAIN and r.kind == RTN_UNICAST and
            not r.gateway and r.dst.version == ip.version and ip in r.dst and
            r.dst.prefixlen < r.dst.max_prefixlen]  # a /32 host route names no subnet
    return max(fits, key=lambda r: r.dst.prefixlen, default=None)


async def find(ipr: Any, ip: IPAddress) -> Place:
    """Ask the kernel (pyroute2's AsyncIPRoute `ipr`). Raises NotFound, or OSError."""
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    routes: list[Route] = []
    async for msg in await ipr.route("dump", family=family):
        dst = msg.get_attr("RTA_DST")
        oif = msg.get_attr("RTA_OIF")
        if oif is None:
            continue
        try:
            net = ipaddress.ip_network(f"{dst or ('0.0.0.0' if ip.version == 4 else '::')}/"
                                       f"{msg['dst_len']}", strict=False)
        except ValueError:
            continue
        routes.append(Route(net, oif, msg.get_attr("RTA_GATEWAY") is not None,
                            msg.get_attr("RTA_TABLE") or msg["table"], msg["type"],
                            msg["scope"]))
    best = choose(routes, ip)
    if best is None:
        raise NotFound(f"no connected route on this node contains {ip} (its interfaces: "
                       f"{await _describe(ipr, family)}): give the interface and prefix "
                       f"length, or check the address")
    name = socket.if_indextoname(best.ifindex)
    return Place(best.ifindex, name, ipaddress.ip_interface(f"{ip}/{best.dst.prefixlen}"),
                 f"{best.dst} dev {name}")


async def _describe(ipr: Any, family: int) -> str:
    """eth0 10.77.0.10/24, eth1 10.77.1.10/24: what this node's interfaces are on."""
    out = []
    async for msg in await ipr.addr("dump", family=family):
        try:
            name = socket.if_indextoname(msg["index"])
        except OSError:
            continue
        if name == "lo":
            continue
        out.append(f"{name} {msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
    return ", ".join(out) or "none with an address of that family"
