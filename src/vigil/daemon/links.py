"""Heartbeat links: UDP sockets for unicast, multicast and broadcast links.

Link i of the unicast kind goes from this node's address[i] to the peer's address[i]; extra
[[link]] entries add a multicast group or the broadcast address on one interface. Each link
hands every datagram it receives, with its own index, to one callback; which socket a frame
arrived on is what names the link, whatever the frame claims.
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

from vigil.errors import VigilError
from vigil.model import Cluster, IPAddress
from vigil.resources.host import Host

log = logging.getLogger(__name__)

Receive = Callable[[bytes, int], None]


@dataclass
class Link:
    index: int
    name: str
    kind: str  # "ucast", "mcast", "bcast"
    dest: tuple[str, int]
    ifname: str
    transport: asyncio.DatagramTransport | None = None
    sent: int = 0
    send_errors: int = 0

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            self.transport.sendto(data, self.dest)
            self.sent += 1
        except OSError:
            # A link whose interface is down refuses sends: that is what deadtime is for.
            self.send_errors += 1


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
    async for msg in await host.ipr.addr("dump", family=family):
        if msg.get("IFA_LOCAL") == str(address) or msg.get("IFA_ADDRESS") == str(address):
            return socket.if_indextoname(msg["index"])
    return None


async def plan(cluster: Cluster, me: str, host: Host) -> list[Link]:
    """Which links this node has, named for their interface (Heartbeat: `Link n2:eth1`)."""
    links: list[Link] = []
    peer = cluster.peers(me)[0]
    mine = cluster.node(me)
    for i, (local, remote) in enumerate(zip(mine.addresses, peer.addresses)):
        ifname = await interface_of(host, local)
        if ifname is None:
            raise VigilError(f"address {local} of node {me} (heartbeat link {i}) is not "
                             f"configured on any interface of this host")
        links.append(Link(len(links), ifname, "ucast", (str(remote), cluster.port), ifname))
    for extra in cluster.links:
        if extra.mode == "mcast":
            assert extra.group is not None
            dest = (str(extra.group), cluster.port)
        else:
            dest = ("255.255.255.255", cluster.port)
        links.append(Link(len(links), extra.interface, extra.mode, dest, extra.interface))
    names = [l.name for l in links]
    for l in links:
        if names.count(l.name) > 1:
            l.name = f"{l.name}/{l.kind}{l.index}"
    return links


async def open_links(cluster: Cluster, me: str, links: list[Link], receive: Receive) -> None:
    loop = asyncio.get_running_loop()
    mine = cluster.node(me)
    extras = iter(cluster.links)
    for link in links:
        try:
            if link.kind == "ucast":
                sock = _ucast_socket(mine.addresses[link.index], cluster.port)
            else:
                extra = next(extras)
                sock = (_mcast_socket(extra.interface, extra.group, cluster.port, extra.ttl)
                        if link.kind == "mcast" else _bcast_socket(extra.interface, cluster.port))
        except OSError as e:
            raise VigilError(f"heartbeat link {link.name}: cannot open socket: {e.strerror}") \
                from None
        transport, _ = await loop.create_datagram_endpoint(
            functools.partial(_Protocol, link.index, receive), sock=sock)
        link.transport = transport


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
