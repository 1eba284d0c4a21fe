"""The packets of a half-open TCP check (synprobe.py), sans IO: a SYN built whole (IPv4
header and TCP header, checksums included, for a raw socket with IP_HDRINCL), the answer
parsed, and the classic BPF program that lets only answers to the probes' ports through.

A SYN answered by SYN-ACK means the port listens, by RST that it refuses; the director's
kernel, which has no socket on the probe's port, resets the half-open connection at once, so
the server keeps nothing. An answer counts only if it acknowledges the probe's own sequence
number (seq + 1), which is random per probe: one who does not see the probe cannot fake
the answer, and a late answer to an earlier probe never counts for a newer one.

What comes in is untrusted: `parse` refuses anything short, not IPv4 and TCP, or with a
header length that points outside the packet.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

SYN, RST, ACK = 0x02, 0x04, 0x10
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_MSS = struct.pack("!BBH", 2, 4, 1460)  # an MSS option, as every real SYN carries
_PROTO_TCP = 6


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    return ~_fold(sum(struct.unpack(f"!{len(data) // 2}H", data))) & 0xFFFF


def _pseudo(src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address, length: int) -> bytes:
    """TCP's pseudo-header for its checksum (RFC 793)."""
    return src.packed + dst.packed + struct.pack("!BBH", 0, _PROTO_TCP, length)


def syn(src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address, sport: int, dport: int,
        seq: int) -> bytes:
    """A whole IPv4 packet: a SYN from src:sport to dst:dport with sequence number `seq`."""
    tcp = _TCP.pack(sport, dport, seq, 0, (5 + len(_MSS) // 4) << 4, SYN, 64240, 0, 0) + _MSS
    tcp = tcp[:16] + struct.pack("!H", checksum(_pseudo(src, dst, len(tcp)) + tcp)) + tcp[18:]
    header = _IP.pack(0x45, 0, _IP.size + len(tcp), 0, 0x4000, 64, _PROTO_TCP, 0, src.packed,
                      dst.packed)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + tcp


class Template:
    """One server's SYN, built once: each probe only writes its sequence number and the TCP
    checksum, updated from a sum made without them (RFC 1624's incremental update, here
    from a zero sequence number)."""

    __slots__ = ("packet", "_base")

    def __init__(self, src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address, sport: int,
                 dport: int) -> None:
        self.packet = bytearray(syn(src, dst, sport, dport, 0))
        tcp = bytearray(self.packet[_IP.size:])
        tcp[16:18] = b"\0\0"
        data = _pseudo(src, dst, len(tcp)) + bytes(tcp)
        self._base = sum(struct.unpack(f"!{len(data) // 2}H", data))

    def fill(self, seq: int) -> bytearray:
        """The packet with sequence number `seq` (the same buffer, rewritten)."""
        struct.pack_into("!I", self.packet, _IP.size + 4, seq)
        total = self._base + (seq >> 16) + (seq & 0xFFFF)
        struct.pack_into("!H", self.packet, _IP.size + 16, ~_fold(total) & 0xFFFF)
        return self.packet


class Answer(NamedTuple):  # a tuple: made for every answer, cheaper than a dataclass
    src: bytes  # the sender's address, packed (4 bytes)
    sport: int
    dport: int
    ack: int
    flags: int


def parse(packet: bytes) -> Answer | None:
    """The TCP answer in an IPv4 packet as a raw socket receives it; None for anything else."""
    if len(packet) < _IP.size:
        return None
    vihl, _, _, _, frag, _, proto, _, src, _ = _IP.unpack_from(packet)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or proto != _PROTO_TCP or ihl < _IP.size or frag & 0x1FFF or \
            len(packet) < ihl + _TCP.size:
        return None
    sport, dport, _, ack, _, flags, _, _, _ = _TCP.unpack_from(packet, ihl)
    return Answer(src, sport, dport, ack, flags)


def verdict(answer: Answer, seq: int) -> bool | None:
    """True: the port listens (SYN-ACK to this probe); False: it refuses (RST to it); None:
    not an answer to the probe whose sequence number is `seq`."""
    if answer.ack != (seq + 1) & 0xFFFFFFFF or not answer.flags & ACK:
        return None
    if answer.flags & RST:
        return False
    if answer.flags & SYN:
        return True
    return None


def port_filter(first: int, last: int) -> list[tuple[int, int, int, int]]:
    """A classic BPF program (code, jt, jf, k) for a raw IPv4 TCP socket: accept a packet whose
    TCP destination port is in [first, last] and is no fragment, drop the rest, so that the
    socket sees only the probes' answers and none of the director's other traffic."""
    ldh_abs, ldxb_msh, ldh_ind = 0x28, 0xB1, 0x48
    jset, jge, jgt, ret = 0x45, 0x35, 0x25, 0x06
    return [
        (ldh_abs, 0, 0, 6),            # fragment offset and flags
        (jset, 5, 0, 0x1FFF),          # a fragment: drop
        (ldxb_msh, 0, 0, 0),           # X = IP header length
        (ldh_ind, 0, 0, 2),            # the TCP destination port
        (jge, 0, 2, first),
        (jgt, 1, 0, last),
        (ret, 0, 0, 0x40000),          # accept (up to 256 KiB)
        (ret, 0, 0, 0),                # drop
    ]
