"""Heartbeat links: which ones this node has, and the UDP ones (unicast, multicast, broadcast).

Link i of the unicast kind goes from this node's address[i] to the peer's address[i]; extra
[[link]] entries add a multicast group or the broadcast address on one interface, a serial
line (daemon/serial.py) or a shared disk (daemon/disk.py). Each link hands every frame it
receives, with its own index, to one callback; which link a frame arrived on is what names
the link, whatever the frame claims.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from vigil.daemon import disk as disk_mod, serial as serial_mod
from vigil.errors import VigilError
from vigil.model import Cluster, DiskLink, IPAddress, SerialLink, UcastLink
from vigil.resources.host import Host

log = logging.getLogger(__name__)

Receive = Callable[[bytes, int], None]


class HeartbeatLink(Protocol):
    """What the daemon needs of every link, whatever carries it (UDP, serial, disk)."""

    index: int
    name: str
    kind: str
    sent: int
    send_errors: int

    def send(self, data: bytes) -> None: ...
    def usable(self) -> bool: ...  # our side of it works (its silence is evidence)
    def describe(self) -> str: ...
    def close(self) -> None: ...


@dataclass
class UdpLink:
    index: int
    name: str
    kind: str  # "ucast", "mcast", "bcast"
    dest: tuple[str, int]
    ifname: str
    host: Host
    make_socket: Callable[[], socket.socket]
    transport: asyncio.DatagramTransport | None = None
    sent: int = 0
    send_errors: int = 0
    source: str | None = None  # the local address its socket is bound to, if any
    ttl: int = 1  # multicast hops

    async def open(self, receive: Receive) -> None:
        try:
            sock = self.make_socket()
        except OSError as e:
            raise VigilError(f"heartbeat link {self.name}: cannot open socket: {e.strerror}") \
                from None
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            functools.partial(_Protocol, self.index, receive), sock=sock)

    def send(self, data: bytes) -> None:
        if self.transport is None:  # closed (the daemon is ending): nothing to send on
            self.send_errors += 1
            return
        try:
            self.transport.sendto(data, self.dest)
            self.sent += 1
        except OSError:
            # A link whose interface is down refuses sends: that is what deadtime is for.
            self.send_errors += 1

    def usable(self) -> bool:
        return self.host.usable(self.ifname)

    def describe(self) -> str:
        return f"{self.kind} to {self.dest[0]}"

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, index: int, receive: Receive) -> None:
        self.index = index
        self.receive = receive

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.receive(data, self.index)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors for unreachable peers: deadtime decides, not the socket


async def interface_of(host: Host, address: IPAddress) -> str | None:
    """The interface holding `address` in this network namespace (None if none does)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    found = None
    async with host.dumping:
        async for msg in await host.ipr.addr("dump", family=family):  # read to the end
            if found is None and str(address) in (msg.get("IFA_LOCAL"), msg.get("IFA_ADDRESS")):
                found = socket.if_indextoname(msg["index"])
    return found


async def plan(cluster: Cluster, me: str, host: Host) -> list[HeartbeatLink]:
    """Which links this node has, named for their interface (Heartbeat: `Link n2:eth1`) or
    device. Nothing is opened yet."""
    links: list[HeartbeatLink] = []
    peer = cluster.peers(me)[0]
    mine = cluster.node(me)
    port = cluster.port
    for i, (local, remote) in enumerate(zip(mine.addresses, peer.addresses)):
        ifname = await interface_of(host, local)
        if ifname is None:
            raise VigilError(f"address {local} of node {me} (heartbeat link {i}) is not "
                             f"configured on any interface of this host")
        links.append(UdpLink(len(links), ifname, "ucast", (str(remote), port), ifname, host,
                             functools.partial(_ucast_socket, local, port), source=str(local)))
    slots = [n.name for n in cluster.nodes]
    t = cluster.timings
    for extra in cluster.links:
        n = len(links)
        if isinstance(extra, DiskLink):
            links.append(disk_mod.DiskLink(n, extra.device_for(me), slots.index(me),
                                           slots.index(peer.name), t.keepalive, t.deadtime / 2))
        elif isinstance(extra, SerialLink):
            links.append(serial_mod.SerialLink(n, extra.device_for(me), extra.baud))
        elif isinstance(extra, UcastLink):
            # One ha.cf serves both nodes: it lists both ends; ours is not a destination.
            peers = [a for a in extra.peers if await interface_of(host, a) is None]
            if not peers:
                raise VigilError(f"ucast {extra.interface}: every listed address "
                                 f"({', '.join(map(str, extra.peers))}) is this node's own")
            for i, addr in enumerate(peers):
                links.append(UdpLink(len(links), extra.interface, "ucast", (str(addr), port),
                                     extra.interface, host,
                                     functools.partial(_dev_socket, extra.interface, port,
                                                       reuse_port=i > 0)))
        elif extra.mode == "mcast":
            assert extra.group is not None
            links.append(UdpLink(n, extra.interface, "mcast", (str(extra.group), port),
                                 extra.interface, host,
                                 functools.partial(_mcast_socket, extra.interface, extra.group,
                                                   port, extra.ttl), ttl=extra.ttl))
        else:
            links.append(UdpLink(n, extra.interface, "bcast", ("255.255.255.255", port),
                                 extra.interface, host,
                                 functools.partial(_bcast_socket, extra.interface, port)))
    names = [l.name for l in links]
    for l in links:
        if names.count(l.name) > 1:
            l.name = f"{l.name}/{l.kind}{l.index}"
    return links


def _base_socket(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Heartbeats first: Heartbeat and keepalived mark them as network control traffic too.
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xC0)
    sock.setblocking(False)
    return sock


def _ucast_socket(address: IPAddress, port: int) -> socket.socket:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = _base_socket(family)
    try:
        sock.bind((str(address), port))
    except OSError:
        sock.close()
        raise
    return sock


def _mcast_socket(ifname: str, group: IPAddress | None, port: int, ttl: int) -> socket.socket:
    assert group is not None
    sock = _base_socket(socket.AF_INET6 if group.version == 6 else socket.AF_INET)
    try:
        ifindex = socket.if_nametoindex(ifname)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        if group.version == 4:
            mreqn = struct.pack("=4s4si", ipaddress.IPv4Address(group).packed, b"\0" * 4, ifindex)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        else:
            mreq = group.packed + struct.pack("@I", ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        sock.bind((str(group), port))
    except OSError:
        sock.close()
        raise
    return sock


def _dev_socket(ifname: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A socket on one interface, any address (Heartbeat's ucast on an interface)."""
    sock = _base_socket(socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("", port))
    except OSError:
        sock.close()
        raise
    return sock


def _bcast_socket(ifname: str, port: int) -> socket.socket:
    sock = _base_socket(socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        sock.bind(("", port))
    except OSError:
        sock.close()
        raise
    return sock
