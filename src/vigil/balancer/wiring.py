"""Whether this director can reach a service's real servers, and for direct routing on which
interface: asked of the kernel (`ip -j route get`) when the service's group starts here, so
that a server the director has no route to is an error naming it at that moment, not
silence later.

NAT needs a route to each real server (through a router is fine: the servers' own route back
must pass the director, which nothing here can see); a server without one is a warning,
since its checks fail and the others serve. Direct routing needs each server on a
directly connected network (no router: only its MAC address is rewritten), all of them on
one interface, and not an address of the director itself; one that does not fit is an
error (the service's group does not start here: the configuration cannot work on this
director). Packets come in on the service's `interface`, else on that same interface.

`decide` is pure (tested alone); `resolve` runs `ip`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vigil.balancer import child
from vigil.balancer.model import IPAddress, VirtualServer
from vigil.balancer.nft_dr import Wiring

IP = "ip"
TIMEOUT = 5.0


class WiringError(Exception):
    """A real server this director cannot reach as the service needs (names it)."""


Route = Mapping[str, Any]  # one object of `ip -j route get`; {"error": "..."} when none


def _targets(vs: VirtualServer) -> list[tuple[str, IPAddress]]:
    out = [(f"real server {r.endpoint}", r.endpoint.address) for r in vs.real]
    if vs.sorry_server is not None and not vs.sorry_server.address.is_loopback:
        out.append((f"sorry server {vs.sorry_server}", vs.sorry_server.address))
    return out


def decide(vs: VirtualServer, routes: Mapping[IPAddress, Route],
           warn: Callable[[str], None] = lambda _: None) -> Wiring | None:
    """The wiring of a DR service (None for NAT) from the kernel's answer for each of its
    servers' addresses; WiringError naming the first server that does not fit a DR
    service, `warn` for each NAT server without a route."""
    egress: dict[str, str] = {}
    for what, addr in _targets(vs):
        r = routes[addr]
        where = f"virtual server {vs.name!r}: {what}"
        if "error" in r:
            if vs.forward != "dr":
                warn(f"{where}: this director has no route to it ({r['error']})")
                continue
            raise WiringError(f"{where}: this director has no route to it ({r['error']})")
        if vs.forward != "dr":
            continue
        if r.get("type") == "local":
            raise WiringError(f"{where} is an address of this director; direct routing "
                              "sends to other hosts only")
        if "gateway" in r:
            raise WiringError(f"{where} is reached through the router {r['gateway']}; "
                              "direct routing needs it on a directly connected network "
                              "(or use forward = \"nat\")")
        egress.setdefault(str(r.get("dev", "?")), what)
    if vs.forward != "dr":
        return None
    if len(egress) > 1:
        raise WiringError(f"virtual server {vs.name!r}: its servers are on different "
                          f"interfaces ({', '.join(f'{w} on {d}' for d, w in egress.items())}); "
                          "direct routing sends on one")
    (dev,) = egress
    return Wiring(ingress=vs.interface or dev, egress=dev)


def parse(addrs: Sequence[IPAddress], out: bytes, err: bytes) -> dict[IPAddress, Route]:
    """`ip -j -force -batch -` of one `route get` per address: stdout has a JSON line per
    route found (its "dst" says which), stderr the failures ("RTNETLINK answers: Network is
    unreachable", then "Command failed -:3")."""
    routes: dict[IPAddress, Route] = {}
    for raw in out.splitlines():
        try:
            got = json.loads(raw)
            r, dst = got[0], ipaddress.ip_address(got[0]["dst"])
        except (ValueError, LookupError, TypeError):
            continue
        if dst in addrs and isinstance(r, dict):
            routes[dst] = r
    why = ""
    for line in err.decode(errors="replace").splitlines():
        if line.startswith("Command failed -:"):
            n = line.removeprefix("Command failed -:").strip()
            if n.isdigit() and 0 < int(n) <= len(addrs):
                routes.setdefault(addrs[int(n) - 1], {"error": why[:200] or "no route"})
            why = ""
        else:
            why = line.strip().removeprefix("RTNETLINK answers: ")
    for a in addrs:
        routes.setdefault(a, {"error": "ip gave no answer for it"})
    return routes


async def resolve(vs: VirtualServer, prefix: Sequence[str] = (),
                  warn: Callable[[str], None] = lambda _: None) -> Wiring | None:
    """`decide` on the kernel's routes (in the namespace `prefix` runs `ip` in): one `ip`
    for all the service's servers."""
    addrs = list(dict.fromkeys(a for _, a in _targets(vs)))
    script = "".join(f"route get {a}\n" for a in addrs).encode()
    try:
        _, out, err = await child.communicate([*prefix, IP, "-j", "-force", "-batch", "-"],
                                              script, TIMEOUT)
    except TimeoutError:
        raise WiringError(f"ip route get gave no answer in {TIMEOUT:g} s") from None
    except OSError as e:
        raise WiringError(f"ip could not run: {e}") from None
    return decide(vs, parse(addrs, out, err), warn)


async def survey(services: Sequence[VirtualServer],
                 prefix: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """`check-config` on a director: (errors, warnings) for all `services`, as each group's
    start would find them on this node now."""
    errors: list[str] = []
    warnings: list[str] = []
    for vs in services:
        try:
            await resolve(vs, prefix, warnings.append)
        except WiringError as e:
            errors.append(str(e))
    return errors, warnings
