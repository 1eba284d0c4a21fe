"""Gratuitous ARP and unsolicited neighbour advertisements for acquired addresses.

Two layers:

- `garp_frame()` and `unsolicited_na_frame()` build whole Ethernet frames; no IO.
- `Announcer` sends them on raw `AF_PACKET` sockets, one per interface, kept open (sending
  costs microseconds, closing ~16 ms). `announce()` sends the first packet before it returns;
  the rest of each burst, the delayed second burst and the periodic refresh are driven by
  `run()`, a long-lived task in the daemon's TaskGroup. Nothing else creates tasks.

Neighbours only change an *existing* entry on a gratuitous ARP (default `arp_accept=0`); that
is exactly the case that matters, clients that talked to the previous owner.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import NoReturn, Protocol

from vigil.model import ArpSettings, IPAddress

log = logging.getLogger(__name__)

BROADCAST_MAC = b"\xff" * 6
ALL_NODES_MAC = bytes.fromhex("333300000001")  # Ethernet multicast for ff02::1
ALL_NODES = IPv6Address("ff02::1")
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARP_REPLY = 2
ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LL_ADDR = 2
MIN_FRAME = 60  # Ethernet minimum without FCS


def garp_frame(mac: bytes, ip: IPv4Address) -> bytes:
    """A gratuitous ARP for `ip` at `mac`: broadcast, ARP *reply* form, padded to 60 bytes.

    Sender and target protocol address are both `ip`, and the target hardware address is
    `mac` too, not zero or broadcast. Linux only treats a reply as gratuitous when
    tip == sip and tha == sha (`arp_is_garp()` in net/ipv4/arp.c); a reply it does not see as
    gratuitous is ignored for an entry updated within the last `locktime` (1 s by default),
    which is precisely the entry of a client that just talked to the previous owner.
    """
    _check_mac(mac)
    eth = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    ipb = ip.packed
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, ARP_REPLY) + mac + ipb + mac + ipb
    return (eth + arp).ljust(MIN_FRAME, b"\x00")


def unsolicited_na_frame(mac: bytes, ip6: IPv6Address) -> bytes:
    """An unsolicited neighbour advertisement for `ip6` at `mac` (RFC 4861 7.2.6).

    Ethernet to 33:33:00:00:00:01, IPv6 from `ip6` to ff02::1 with hop limit 255 (receivers
    drop ND with any other), ICMPv6 type 136 with only the Override flag (not Solicited, not
    Router), the target, and a target link-layer address option carrying `mac`.
    """
    _check_mac(mac)
    icmp_body = (
        struct.pack("!I", NA_FLAG_OVERRIDE)
        + ip6.packed
        + struct.pack("!BB", ND_OPT_TARGET_LL_ADDR, 1)  # option length in units of 8 bytes
        + mac
    )
    unsummed = struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, 0) + icmp_body
    csum = icmpv6_checksum(ip6, ALL_NODES, unsummed)
    icmp = struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, csum) + icmp_body
    ip_header = (
        struct.pack("!IHBB", 6 << 28, len(icmp), ICMPV6, 255) + ip6.packed + ALL_NODES.packed
    )
    eth = ALL_NODES_MAC + mac + struct.pack("!H", ETH_P_IPV6)
    return eth + ip_header + icmp


def inet_checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmpv6_checksum(src: IPv6Address, dst: IPv6Address, message: bytes) -> int:
    """RFC 4443 2.3: the internet checksum over the pseudo-header and the message."""
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(message), ICMPV6)
    return inet_checksum(pseudo + message)


def _check_mac(mac: bytes) -> None:
    if len(mac) != 6:
        raise ValueError(f"not an Ethernet address: {mac!r}")


def frame_for(mac: bytes, address: IPAddress) -> bytes:
    if isinstance(address, IPv4Address):
        return garp_frame(mac, address)
    return unsolicited_na_frame(mac, address)


class FrameSender(Protocol):
    """Where the Announcer's frames go; `PacketSockets` on a host, a fake in tests."""

    def mac(self, ifname: str) -> bytes:
        """The interface's current hardware address; OSError when it has none or is gone."""

    def send(self, ifname: str, frame: bytes) -> None:
        """Send one whole Ethernet frame now, without blocking; OSError on failure."""

    def close(self) -> None: ...


class PacketSockets:
    """One raw AF_PACKET socket per interface, opened on first use and kept open.

    The sockets are bound with protocol 0, so they receive nothing and never fill up. A socket
    whose interface was deleted (and maybe re-created under the same name) fails with ENXIO or
    reports an empty address: it is replaced once, on the spot.
    """

    def __init__(self) -> None:
        self._sockets: dict[str, socket.socket] = {}

    def mac(self, ifname: str) -> bytes:
        mac: bytes = self._socket(ifname).getsockname()[4]
        if not mac:  # bound to an interface that no longer exists
            mac = self._reopen(ifname).getsockname()[4]
        if len(mac) != 6:
            raise OSError(errno.EAFNOSUPPORT, f"{ifname} has no Ethernet address")
        return mac

    def send(self, ifname: str, frame: bytes) -> None:
        try:
            self._socket(ifname).send(frame)
        except OSError as e:
            if e.errno not in (errno.ENXIO, errno.ENODEV):
                raise  # ENETDOWN, ENOBUFS...: the socket itself is fine
            self._reopen(ifname).send(frame)

    def close(self) -> None:
        sockets, self._sockets = self._sockets, {}
        for s in sockets.values():
            s.close()

    def _socket(self, ifname: str) -> socket.socket:
        s = self._sockets.get(ifname)
        if s is None:
            s = self._sockets[ifname] = _open_packet_socket(ifname)
        return s

    def _reopen(self, ifname: str) -> socket.socket:
        old = self._sockets.pop(ifname, None)
        if old is not None:
            old.close()
        return self._socket(ifname)


def _open_packet_socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        s.setblocking(False)
        s.bind((ifname, 0))
    except BaseException:
        s.close()
        raise
    return s


@dataclass(slots=True)
class _Plan:
    """What remains to be sent for one announced address."""

    ifname: str
    settings: ArpSettings
    due: list[float] = field(default_factory=list)  # sorted send times
    refresh_at: float | None = None

    def next_at(self) -> float | None:
        times = [t for t in (self.due[0] if self.due else None, self.refresh_at) if t is not None]
        return min(times) if times else None


@dataclass(frozen=True, slots=True)
class AnnouncerStatistics:
    sent: int
    failed: int
    announced: tuple[IPAddress, ...]  # addresses with work scheduled


class Announcer:
    """Sends and schedules gratuitous ARPs / unsolicited NAs.

    One burst is `settings.count` packets `settings.interval` apart. `announce()` sends a
    burst starting now, then, when `repeat_delay` > 0, a second burst of `repeat_count`
    packets `repeat_delay` after the first, and every `refresh` seconds (when > 0) one more
    burst until `withdraw()`. Send failures (interface down, gone) are logged and counted in
    `failed`, never raised: the address is already configured and later packets may succeed.

    `sent` and `failed` count packets per address.
    """

    def __init__(
        self,
        sender: FrameSender | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        is_local: Callable[[IPAddress], bool] | None = None,
    ) -> None:
        self._sender: FrameSender = sender if sender is not None else PacketSockets()
        self._clock = clock
        # Asked before every scheduled packet (not the first, sent as the address is added):
        # a daemon frozen between two bursts whose guard removed the address meanwhile must
        # not, on waking, point the clients back at this host before its own stop runs (the
        # torture saw 530 ms outages from that). None: no check (tests with fake addresses).
        self._is_local = is_local
        self._plans: dict[IPAddress, _Plan] = {}
        self._wake = asyncio.Event()
        self.sent: Counter[IPAddress] = Counter()
        self.failed: Counter[IPAddress] = Counter()

    def announce(self, ifname: str, address: IPAddress, settings: ArpSettings) -> None:
        """Announce `address` on `ifname` now; schedule the rest (see the class docstring).

        Replaces whatever was scheduled for `address`. The first packet is on the wire when
        this returns.
        """
        now = self._clock()
        plan = _Plan(ifname, settings)
        plan.due = [now + i * settings.interval for i in range(1, settings.count)]
        if settings.repeat_delay > 0:
            start = now + settings.repeat_delay
            plan.due += [start + i * settings.interval for i in range(settings.repeat_count)]
            plan.due.sort()
        if settings.refresh > 0:
            plan.refresh_at = now + settings.refresh
        self._plans[address] = plan
        if settings.count > 0:
            self._send(address, plan)
        self._wake.set()

    def reannounce(self, address: IPAddress) -> bool:
        """Send one burst for an announced address now (after a conflict was resolved).

        Returns False, sending nothing, when `address` is not announced.
        """
        plan = self._plans.get(address)
        if plan is None:
            return False
        self._start_burst(address, plan, self._clock())
        self._wake.set()
        return True

    def withdraw(self, address: IPAddress) -> None:
        """Cancel everything scheduled for `address`; absent is fine."""
        if self._plans.pop(address, None) is not None:
            self._wake.set()

    def mac(self, ifname: str) -> bytes:
        """The interface's hardware address (OSError when it has none or is gone)."""
        return self._sender.mac(ifname)

    def is_announced(self, address: IPAddress) -> bool:
        return address in self._plans

    def statistics(self) -> AnnouncerStatistics:
        return AnnouncerStatistics(
            sent=sum(self.sent.values()),
            failed=sum(self.failed.values()),
            announced=tuple(self._plans),
        )

    async def run(self) -> NoReturn:
        """Send scheduled packets until cancelled. Run exactly one, in the daemon's TaskGroup."""
        self._wake = asyncio.Event()  # bound to this loop; the plans made so far are seen below
        while True:
            self._wake.clear()
            self._send_due(self._clock())
            next_at = min(
                (t for t in (p.next_at() for p in self._plans.values()) if t is not None),
                default=None,
            )
            if next_at is None:
                await self._wake.wait()
                continue
            delay = next_at - self._clock()
            if delay <= 0:
                continue
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def close(self) -> None:
        """Forget every plan and close the sockets (blocks ~16 ms per socket)."""
        self._plans.clear()
        self._sender.close()

    def _start_burst(self, address: IPAddress, plan: _Plan, now: float) -> None:
        count = plan.settings.count
        if count <= 0:
            return
        plan.due += [now + i * plan.settings.interval for i in range(1, count)]
        plan.due.sort()
        self._send(address, plan)

    def _send_due(self, now: float) -> None:
        for address, plan in list(self._plans.items()):
            due = bool(plan.due and plan.due[0] <= now) or \
                (plan.refresh_at is not None and plan.refresh_at <= now)
            if due and self._is_local is not None and not self._is_local(address):
                log.warning("not announcing %s on %s: it is no longer on this host",
                            address, plan.ifname)
                del self._plans[address]
                continue
            while plan.due and plan.due[0] <= now:
                plan.due.pop(0)
                self._send(address, plan)
            if plan.refresh_at is not None and plan.refresh_at <= now:
                following = plan.refresh_at + plan.settings.refresh
                if following <= now:  # far behind (a paused loop): count from now
                    following = now + plan.settings.refresh
                plan.refresh_at = following
                self._start_burst(address, plan, now)

    def _send(self, address: IPAddress, plan: _Plan) -> None:
        try:
            frame = frame_for(self._sender.mac(plan.ifname), address)
            self._sender.send(plan.ifname, frame)
        except OSError as e:
            self.failed[address] += 1
            if self.failed[address] == 1 or self.failed[address] % 100 == 0:
                log.warning(
                    "announce failed address=%s interface=%s failures=%d error=%s",
                    address, plan.ifname, self.failed[address], e.strerror or e,
                )
            return
        self.sent[address] += 1


def address_is_local(address: IPAddress) -> bool:
    """Is `address` configured on this host (this network namespace)? A bind to it fails
    otherwise (unless net.ipv4.ip_nonlocal_bind is set: then it always says yes)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((str(address), 0))
        except OSError:
            return False
    return True
