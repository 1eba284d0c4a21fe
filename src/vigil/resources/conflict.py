"""Is an address still in use by another host? ARP probes (RFC 5227) and DAD-style neighbour
solicitations (RFC 4862 5.4), sent and heard on raw packet sockets.

Before a node takes a floating address from a peer that went silent without a goodbye, it
asks the network whether the address still answers (lookout.py decides when): when every
vigil process of the old owner died at once, nothing removed the address there, and its host
still answers for it. Two layers, as announce.py:

- `arp_probe_frame()`, `ns_probe_frame()` build the whole Ethernet frames, and `answer_from()`
  reads one received frame; no IO.
- `AddressProber` keeps one AF_PACKET socket per interface and family, opened on first use
  and kept (closing one costs ~16 ms). Each carries a classic BPF filter that drops
  everything while no probe runs, and during a probe accepts only what could answer it (an
  ARP packet whose sender is the address; an ICMPv6 neighbour advertisement for it), so an
  idle socket never queues traffic.

The probe is the form that never disturbs anyone's neighbour cache: an ARP request from
0.0.0.0 ("who has A?", sender MAC ours) or a neighbour solicitation from :: to A's
solicited-node group. A host that holds A answers it (Linux answers both, A configured with
or without IFA_F_NODAD); a host that does not, and a host that is off or reset, stays
silent. What it cannot see: a holder that answers nothing (ARP filtered, arp_ignore), or one
on another segment.
"""

from __future__ import annotations

import asyncio
import ctypes
import socket
import struct
import time
from ipaddress import IPv4Address, IPv6Address

from vigil.model import IPAddress
from vigil.resources.announce import (BROADCAST_MAC, ETH_P_ARP, ETH_P_IPV6, ICMPV6, MIN_FRAME,
                                      icmpv6_checksum)

ARP_REQUEST = 1
ND_NEIGHBOR_SOLICIT = 135
ND_NEIGHBOR_ADVERT = 136
ND_OPT_TARGET_LL_ADDR = 2
UNSPECIFIED = IPv6Address("::")
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4


def solicited_node(ip6: IPv6Address) -> IPv6Address:
    """ff02::1:ffXX:XXXX, the group a host holding `ip6` listens on (RFC 4291 2.7.1)."""
    return IPv6Address(b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + ip6.packed[13:])


def arp_probe_frame(mac: bytes, ip: IPv4Address) -> bytes:
    """RFC 5227 2.1.1: ARP request, sender hardware address ours, sender IP 0.0.0.0, target
    hardware address zero, target IP the address probed; broadcast."""
    eth = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, ARP_REQUEST) + mac + b"\x00" * 4 + \
        b"\x00" * 6 + ip.packed
    return (eth + arp).ljust(MIN_FRAME, b"\x00")


def ns_probe_frame(mac: bytes, ip6: IPv6Address) -> bytes:
    """RFC 4862 5.4.2: a neighbour solicitation for `ip6` from the unspecified address to its
    solicited-node group, hop limit 255, with no source link-layer address option."""
    dst = solicited_node(ip6)
    body = b"\x00" * 4 + ip6.packed  # reserved, target
    csum = icmpv6_checksum(UNSPECIFIED, dst, struct.pack("!BBH", ND_NEIGHBOR_SOLICIT, 0, 0) + body)
    icmp = struct.pack("!BBH", ND_NEIGHBOR_SOLICIT, 0, csum) + body
    ip_header = struct.pack("!IHBB", 6 << 28, len(icmp), ICMPV6, 255) + UNSPECIFIED.packed + \
        dst.packed
    eth = b"\x33\x33" + dst.packed[12:] + mac + struct.pack("!H", ETH_P_IPV6)
    return eth + ip_header + icmp


def answer_from(frame: bytes, address: IPAddress) -> bytes | None:
    """The hardware address of a host that claims `address` in this received frame: an ARP
    packet (reply or request) sent from `address`, or a neighbour advertisement for it.
    None for anything else, short or malformed frames included."""
    if isinstance(address, IPv4Address):
        if len(frame) < 42 or frame[12:14] != b"\x08\x06" or frame[20:22] not in (
                b"\x00\x01", b"\x00\x02"):
            return None
        return frame[22:28] if frame[28:32] == address.packed else None
    if len(frame) < 78 or frame[12:14] != b"\x86\xdd" or frame[20] != ICMPV6 or \
            frame[54] != ND_NEIGHBOR_ADVERT or frame[62:78] != address.packed:
        return None
    opts = frame[78:]
    while len(opts) >= 8 and opts[1]:  # the target link-layer address, when it is given
        if opts[0] == ND_OPT_TARGET_LL_ADDR:
            return opts[2:8]
        opts = opts[opts[1] * 8:]
    return frame[6:12]


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


# --- classic BPF: only what could answer a probe ---------------------------------------------

_LD_W, _LD_B, _JEQ, _RET = 0x20, 0x30, 0x15, 0x06


def _program(tests: list[tuple[int, int, int]]) -> bytes:
    """Accept a frame when every (load op, offset, value) test holds, else drop it."""
    out = []
    for i, (op, offset, value) in enumerate(tests):
        out.append(struct.pack("HBBI", op, 0, 0, offset))
        out.append(struct.pack("HBBI", _JEQ, 0, 2 * (len(tests) - i - 1) + 1, value))
    out.append(struct.pack("HBBI", _RET, 0, 0, 0x40000))  # accept: the whole frame
    out.append(struct.pack("HBBI", _RET, 0, 0, 0))  # drop
    return b"".join(out)


DROP_ALL = struct.pack("HBBI", _RET, 0, 0, 0)


def accept_filter(address: IPAddress) -> bytes:
    """ARP: the sender IP (frame offset 28) is `address`. IPv6: ICMPv6 (next header at 20),
    neighbour advertisement (type at 54), target (62..78) is `address`."""
    if isinstance(address, IPv4Address):
        return _program([(_LD_W, 28, int(address))])
    words = struct.unpack("!4I", address.packed)
    return _program([(_LD_B, 20, ICMPV6), (_LD_B, 54, ND_NEIGHBOR_ADVERT)] +
                    [(_LD_W, 62 + 4 * i, w) for i, w in enumerate(words)])


def _attach(sock: socket.socket, program: bytes) -> None:
    buf = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class AddressProber:
    """Probes addresses on this host's interfaces; at most one probe per socket at a time
    (the daemon runs one per group, and a group's addresses are distinct)."""

    def __init__(self) -> None:
        self._sockets: dict[tuple[str, int], socket.socket] = {}
        self._busy: set[tuple[str, int]] = set()

    async def answered(self, ifname: str, address: IPAddress, mac: bytes,
                       wait: float) -> bytes | None:
        """Probe `address` on `ifname` (our hardware address `mac`), twice, `wait` / 2 apart,
        and listen for `wait` in all: the hardware address of the host that answered, or
        None. OSError when the interface cannot be probed (gone, down)."""
        family = 4 if isinstance(address, IPv4Address) else 6
        key = (ifname, family)
        while key in self._busy:  # another group probing on the same interface
            await asyncio.sleep(0.001)
        self._busy.add(key)
        try:
            sock = self._socket(ifname, family)
            # An interface that went down left its error pending on the socket (ENETDOWN),
            # which the next send would report although it is up again: read it away. If
            # it is still down, the send says so.
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            _attach(sock, accept_filter(address))
            try:
                probe = arp_probe_frame(mac, address) if isinstance(address, IPv4Address) \
                    else ns_probe_frame(mac, address)
                return await self._listen(sock, probe, address, mac, wait)
            finally:
                _attach(sock, DROP_ALL)
                _drain(sock)
        finally:
            self._busy.discard(key)

    async def _listen(self, sock: socket.socket, probe: bytes, address: IPAddress,
                      mac: bytes, wait: float) -> bytes | None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(sock.fileno(), readable.set)
        try:
            end = time.monotonic() + wait
            resend = time.monotonic() + wait / 2
            sock.send(probe)
            while True:
                readable.clear()
                got = _read(sock, address, mac)  # also what came while the loop was busy
                if got is not None:
                    return got
                now = time.monotonic()
                if now >= end:
                    return None
                if resend and now >= resend:
                    resend = 0.0
                    sock.send(probe)  # one lost probe or answer does not fool us
                try:
                    async with asyncio.timeout(min(end, resend or end) - now):
                        await readable.wait()
                except TimeoutError:
                    pass
        finally:
            loop.remove_reader(sock.fileno())

    def open(self, ifname: str, family: int) -> None:
        """Open (and keep) the socket for probes on `ifname` (family 4 or 6) ahead of time."""
        self._socket(ifname, family)

    def _socket(self, ifname: str, family: int) -> socket.socket:
        key = (ifname, family)
        s = self._sockets.get(key)
        if s is not None and s.getsockname()[0] == ifname and s.getsockname()[4]:
            return s
        if s is not None:  # its interface went away (and came back): a new socket
            s.close()
        proto = ETH_P_ARP if family == 4 else ETH_P_IPV6
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
        try:
            s.setblocking(False)
            _attach(s, DROP_ALL)  # before bind: nothing is queued until a probe wants it
            s.bind((ifname, proto))
            _drain(s)
        except BaseException:
            s.close()
            raise
        self._sockets[key] = s
        return s

    def close(self) -> None:
        sockets, self._sockets = self._sockets, {}
        for s in sockets.values():
            s.close()


def _read(sock: socket.socket, address: IPAddress, mac: bytes) -> bytes | None:
    while True:
        try:
            frame, addr = sock.recvfrom(2048)
        except BlockingIOError:
            return None  # (any other error is the caller's: never taken for silence)
        if addr[2] == PACKET_OUTGOING:
            continue  # our own probe
        who = answer_from(frame, address)
        if who is not None and who != mac:
            return who


def _drain(sock: socket.socket) -> None:
    for _ in range(1000):
        try:
            sock.recv(2048)
        except OSError:
            return
