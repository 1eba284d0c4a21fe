"""A floating IP address: netlink add/delete, then gratuitous ARP / unsolicited NA."""

from __future__ import annotations

import errno
import logging
import socket
import time
from ipaddress import IPv4Interface, ip_address
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

from vigil.errors import AgentError
from vigil.model import IPInterface, IpResource
from vigil.resources import findif
from vigil.resources.base import Agent
from vigil.resources.conflict import mac_text
from vigil.resources.host import Host

log = logging.getLogger(__name__)

REFIND = 5.0  # seconds a found interface is trusted by the health check before it looks again


class IpAgent(Agent):
    """Adds `resource.address` to `resource.interface` and announces it.

    Without an interface or a prefix length in the configuration (Heartbeat's bare
    `IPaddr::192.168.10.200`), both come from the connected route that contains the address
    (findif.py), looked up at each start; the stop removes the address from where it was put,
    or, in a process that did not put it (the guard, a restarted daemon), from wherever it is.

    IPv6 addresses are added with IFA_F_NODAD (as keepalived does): usable at once instead of
    after ~1 s of duplicate address detection; the cluster, not DAD, decides who owns it.
    IPv4 addresses get the label, if any (labels do not exist for IPv6), and the broadcast
    address configured (Heartbeat's fourth field) or the subnet's, as `ip addr add ... brd +`.

    Deleting an IPv4 primary address also deletes the secondaries of its subnet unless the
    interface has `promote_secondaries` set; give the interface a fixed address in the subnet
    (as is usual) so that floating addresses are always secondaries.
    """

    def __init__(self, resource: IpResource, host: Host) -> None:
        self.resource = resource
        self.host = host
        self.name = resource.name
        self.timeout = resource.timeout
        self._found: tuple[float, findif.Place] | None = None  # found when, and where
        self._unplaced = ""  # why the address has no place now (said once per reason)

    @property
    def fixed(self) -> bool:
        return self.resource.interface is not None and self.resource.prefix_given

    async def start(self) -> None:
        r = self.resource
        ifname, address = await self._place(fresh=True)
        link = _index(ifname)
        if link is None:
            raise self.error(f"interface {ifname} does not exist")
        try:
            await self.host.ipr.addr("add", **self._addr_args(link, address, adding=True))
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise self.error(f"cannot add address: {_reason(e)}") from e
            log.debug("address already present address=%s interface=%s", address, ifname)
        self.host.announcer.announce(ifname, r.address.ip, r.arp)

    async def stop(self) -> None:
        r = self.resource
        self.host.announcer.withdraw(r.address.ip)
        for link, prefix in await self._where_present():
            try:
                address = _with_prefix(r.address, prefix)
                await self.host.ipr.addr("del", **self._addr_args(link, address, adding=False))
            except NetlinkError as e:
                if e.code in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
                    continue  # already absent
                raise self.error(f"cannot delete address: {_reason(e)}") from e

    async def probe(self) -> bool:
        """True when the address is configured here: on its interface with its prefix
        length, or, when those are found at start, anywhere (with any prefix length)."""
        return bool(await self._where_present())

    async def answered(self, wait: float) -> str | None:
        """Look before taking (lookout.py): does another host answer for the address on its
        interface within `wait`? Its hardware address ("02:..") if so, None if nobody does.
        AgentError when it cannot be probed (the interface down, gone or not found): that
        is never taken for silence."""
        r = self.resource
        try:
            ifname, _ = await self._place()
            mac = self.host.announcer.mac(ifname)
            who = await self.host.prober.answered(ifname, r.address.ip, mac, wait)
        except OSError as e:
            raise self.error(f"cannot probe the address: {e.strerror or e}") from None
        return None if who is None else mac_text(who)

    async def prepare(self) -> None:
        """Open the probe's socket now, not on a failover's critical path."""
        try:
            ifname, _ = await self._place()
            self.host.prober.open(ifname, self.resource.address.version)
        except (OSError, AgentError):
            pass  # the interface is not there yet: the probe opens it when it is

    async def healthy(self) -> bool:
        """The interface exists, is administratively up and has carrier (IFF_UP, IFF_RUNNING),
        and, when it is found at start, a connected route contains the address.

        False when this node's own link is cut, so that it can hand the address over.
        """
        try:
            ifname, _ = await self._place()
        except AgentError:
            return False
        return self.host.usable(ifname)

    def healthy_now(self) -> bool | None:
        """As `healthy`, from the configured interface or a recent look (one ioctl); None
        when the interface must be looked up again (`healthy` does that)."""
        try:
            known = self._known()
        except AgentError:
            return False
        return None if known is None else self.host.usable(known[0])

    async def _place(self, fresh: bool = False) -> tuple[str, IPInterface]:
        """The interface and the address with its prefix length: as configured, or found
        (findif.py). `fresh`: look again now (a start); else trust a recent look."""
        known = self._known(fresh)
        if known is not None:
            return known
        try:
            async with self.host.dumping:
                place = await findif.find(self.host.ipr, self.resource.address.ip)
        except findif.NotFound as e:
            self._found = None
            if str(e) != self._unplaced:
                self._unplaced = str(e)
                log.error("%s: %s; this node cannot run it", self.name, e)
            raise self.error(str(e)) from None
        if self._found is None or self._found[1] != place:
            log.info("%s: found %s as %s (connected route %s)", self.name, place.ifname,
                     place.address.with_prefixlen, place.route)
        self._found, self._unplaced = (time.monotonic(), place), ""
        return self._fit(place)

    def _known(self, fresh: bool = False) -> tuple[str, IPInterface] | None:
        """`_place` without IO: the configured place, or a look younger than REFIND unless
        `fresh`; None when only a new look can tell."""
        r = self.resource
        if self.fixed:
            assert r.interface is not None
            return r.interface, r.address
        if not fresh and self._found is not None and \
                time.monotonic() - self._found[0] < REFIND:
            return self._fit(self._found[1])
        return None

    def _fit(self, place: findif.Place) -> tuple[str, IPInterface]:
        """A found place, as interface and address; AgentError when it is not on the
        configured interface."""
        r = self.resource
        if r.interface is not None and place.ifname != r.interface:
            raise self.error(f"the connected route for {r.address.ip} is on {place.ifname}, "
                             f"not on the configured {r.interface}")
        return place.ifname, r.address if r.prefix_given else place.address

    async def _where_present(self) -> list[tuple[int, int]]:
        """(interface index, prefix length) of each place the address is configured: on its
        fixed interface with its prefix, or anywhere when those are found at start."""
        want = self.resource.address
        family = socket.AF_INET if want.version == 4 else socket.AF_INET6
        link = _index(self.resource.interface) if self.resource.interface else None
        if self.resource.interface is not None and link is None:
            return []  # the address went with its interface
        out = []
        try:
            async with self.host.dumping:
                dump = await self.host.ipr.addr("dump", family=family, **(
                    {"index": link} if link is not None else {}))
                async for msg in dump:  # read to the end: the dump must be consumed
                    if _same_ip(msg.get_attr("IFA_ADDRESS") or msg.get("address"), want) and \
                            (link is None or msg.get("index") == link) and \
                            (not self.resource.prefix_given or
                             msg.get("prefixlen") == want.network.prefixlen):
                        out.append((msg.get("index"), msg.get("prefixlen")))
        except NetlinkError as e:
            raise self.error(f"cannot list addresses: {_reason(e)}") from e
        return out

    def _addr_args(self, index: int, a: IPInterface, *, adding: bool) -> dict[str, Any]:
        args: dict[str, Any] = {
            "index": index,
            "address": str(a.ip),
            "prefixlen": a.network.prefixlen,
            "family": socket.AF_INET if a.version == 4 else socket.AF_INET6,
        }
        if adding:
            if isinstance(a, IPv4Interface):
                if self.resource.label:
                    args["label"] = self.resource.label
                if self.resource.broadcast is not None:
                    args["broadcast"] = str(self.resource.broadcast)
                elif a.network.prefixlen <= 30:
                    args["broadcast"] = str(a.network.broadcast_address)
            else:
                args["flags"] = IFA_F_NODAD
        return args


def _index(ifname: str) -> int | None:
    """The interface's index, None when it does not exist. One syscall rather than a
    netlink round trip: start and stop are on the hand-over's critical path."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        return None


def _with_prefix(a: IPInterface, prefix: int) -> IPInterface:
    return a if a.network.prefixlen == prefix else type(a)(f"{a.ip}/{prefix}")


def _same_ip(text: object, want: IPInterface) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return ip_address(text) == want.ip
    except ValueError:
        return False


def _reason(e: NetlinkError) -> str:
    return f"{errno.errorcode.get(e.code, e.code)} ({e.args[1] if len(e.args) > 1 else e})"
