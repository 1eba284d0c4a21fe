"""A floating IP address: netlink add/delete, then gratuitous ARP / unsolicited NA."""

from __future__ import annotations

import errno
import logging
import socket
from ipaddress import IPv4Interface, ip_address
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

from vigil.model import IPInterface, IpResource
from vigil.resources.base import Agent
from vigil.resources.conflict import mac_text
from vigil.resources.host import Host

log = logging.getLogger(__name__)


class IpAgent(Agent):
    """Adds `resource.address` to `resource.interface` and announces it.

    IPv6 addresses are added with IFA_F_NODAD (as keepalived does): usable at once instead of
    after ~1 s of duplicate address detection; the cluster, not DAD, decides who owns it.
    IPv4 addresses get the label, if any (labels do not exist for IPv6), and the subnet's
    broadcast address, as `ip addr add ... brd +` would set.

    Deleting an IPv4 primary address also deletes the secondaries of its subnet unless the
    interface has `promote_secondaries` set; give the interface a fixed address in the subnet
    (as is usual) so that floating addresses are always secondaries.
    """

    def __init__(self, resource: IpResource, host: Host) -> None:
        self.resource = resource
        self.host = host
        self.name = resource.name
        self.timeout = resource.timeout

    async def start(self) -> None:
        r = self.resource
        link = await self._interface()
        if link is None:
            raise self.error(f"interface {r.interface} does not exist")
        try:
            await self.host.ipr.addr("add", **self._addr_args(link, adding=True))
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise self.error(f"cannot add address: {_reason(e)}") from e
            log.debug("address already present address=%s interface=%s", r.address, r.interface)
        self.host.announcer.announce(r.interface, r.address.ip, r.arp)

    async def stop(self) -> None:
        r = self.resource
        self.host.announcer.withdraw(r.address.ip)
        link = await self._interface()
        if link is None:
            return  # the address went with its interface
        try:
            await self.host.ipr.addr("del", **self._addr_args(link, adding=False))
        except NetlinkError as e:
            if e.code in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
                return  # already absent
            raise self.error(f"cannot delete address: {_reason(e)}") from e

    async def probe(self) -> bool:
        """True when the address (with its prefix length) is configured on the interface."""
        link = await self._interface()
        if link is None:
            return False
        want = self.resource.address
        family = socket.AF_INET if want.version == 4 else socket.AF_INET6
        try:
            dump = await self.host.ipr.addr("dump", family=family, index=link)
            found = False
            async for msg in dump:
                if (
                    msg.get("index") == link
                    and msg.get("prefixlen") == want.network.prefixlen
                    and _same_ip(msg.get("address"), want)
                ):
                    found = True  # keep reading: the dump must be consumed to its end
        except NetlinkError as e:
            raise self.error(f"cannot list addresses: {_reason(e)}") from e
        return found

    async def answered(self, wait: float) -> str | None:
        """Look before taking (lookout.py): does another host answer for the address on its
        interface within `wait`? Its hardware address ("02:..") if so. An interface that
        cannot be probed (down, gone) answers nothing: the start says what is wrong."""
        r = self.resource
        try:
            mac = self.host.announcer.mac(r.interface)
            who = await self.host.prober.answered(r.interface, r.address.ip, mac, wait)
        except OSError as e:
            log.warning("%s: cannot probe the address: %s", self.name, e.strerror or e)
            return None
        return None if who is None else mac_text(who)

    async def prepare(self) -> None:
        """Open the probe's socket now, not on a failover's critical path."""
        try:
            self.host.prober.open(self.resource.interface, self.resource.address.version)
        except OSError:
            pass  # the interface is not there yet: the probe opens it when it is

    async def healthy(self) -> bool:
        """The interface exists, is administratively up and has carrier (IFF_UP, IFF_RUNNING).

        False when this node's own link is cut, so that it can hand the address over.
        """
        return self.host.usable(self.resource.interface)

    async def _interface(self) -> int | None:
        """The interface's index, None when it does not exist. One syscall rather than a
        netlink round trip: start and stop are on the hand-over's critical path."""
        try:
            return socket.if_nametoindex(self.resource.interface)
        except OSError:
            return None

    def _addr_args(self, index: int, *, adding: bool) -> dict[str, Any]:
        a = self.resource.address
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
                if a.network.prefixlen <= 30:
                    args["broadcast"] = str(a.network.broadcast_address)
            else:
                args["flags"] = IFA_F_NODAD
        return args


def _same_ip(text: object, want: IPInterface) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return ip_address(text) == want.ip
    except ValueError:
        return False


def _reason(e: NetlinkError) -> str:
    return f"{errno.errorcode.get(e.code, e.code)} ({e.args[1] if len(e.args) > 1 else e})"
