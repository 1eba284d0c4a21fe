"""The address probes (resources/conflict.py): exact bytes, what counts as an answer, and the
socket filters, run here by a small classic-BPF interpreter on the same frames."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

from hypothesis import given, strategies as st

from vigil.resources.announce import garp_frame, icmpv6_checksum, unsolicited_na_frame
from vigil.resources.conflict import (DROP_ALL, accept_filter, answer_from, arp_probe_frame,
                                      mac_text, ns_probe_frame, solicited_node)

MAC = bytes.fromhex("020000000001")
OTHER = bytes.fromhex("0242ac110002")
V4 = IPv4Address("10.0.0.100")
V6 = IPv6Address("fd00::100")


def run_bpf(program: bytes, frame: bytes) -> int:
    """The subset conflict.py emits: ld word/byte absolute, jeq, ret."""
    insns = [struct.unpack("HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            if k + 4 > len(frame):
                return 0
            acc = struct.unpack("!I", frame[k:k + 4])[0]
        elif code == 0x30:
            if k + 1 > len(frame):
                return 0
            acc = frame[k]
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected BPF code {code:#x}")
        pc += 1


def arp(op: int, sha: bytes, spa: IPv4Address | bytes, tpa: IPv4Address) -> bytes:
    spa_b = spa.packed if isinstance(spa, IPv4Address) else spa
    return (b"\xff" * 6 + sha + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha
            + spa_b + b"\x00" * 6 + tpa.packed).ljust(60, b"\x00")


def test_the_arp_probe_is_rfc_5227s() -> None:
    f = arp_probe_frame(MAC, V4)
    assert len(f) == 60 and f[:6] == b"\xff" * 6 and f[6:12] == MAC and f[12:14] == b"\x08\x06"
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", f[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)  # a request
    assert f[22:28] == MAC and f[28:32] == b"\x00" * 4  # sender IP 0.0.0.0: nobody learns
    assert f[32:38] == b"\x00" * 6 and f[38:42] == V4.packed


def test_the_neighbour_solicitation_is_a_dad_probe() -> None:
    f = ns_probe_frame(MAC, V6)
    group = solicited_node(V6)
    assert str(group) == "ff02::1:ff00:100"
    assert f[:6] == b"\x33\x33\xff\x00\x01\x00" and f[6:12] == MAC and f[12:14] == b"\x86\xdd"
    ver, plen, nh, hops = struct.unpack("!IHBB", f[14:22])
    assert ver >> 28 == 6 and plen == 24 and nh == 58 and hops == 255
    assert f[22:38] == b"\x00" * 16 and f[38:54] == group.packed
    icmp = f[54:]
    assert icmp[0] == 135 and icmp[1] == 0 and icmp[8:24] == V6.packed and len(icmp) == 24
    zeroed = icmp[:2] + b"\x00\x00" + icmp[4:]
    assert struct.unpack("!H", icmp[2:4])[0] == icmpv6_checksum(IPv6Address("::"), group, zeroed)


def test_who_answers() -> None:
    assert answer_from(arp(2, OTHER, V4, IPv4Address("0.0.0.0")), V4) == OTHER  # a reply
    assert answer_from(garp_frame(OTHER, V4), V4) == OTHER  # the holder announcing it
    assert answer_from(arp(1, OTHER, V4, V4), V4) == OTHER  # its own request from it
    assert answer_from(arp_probe_frame(OTHER, V4), V4) is None  # someone else probing
    assert answer_from(arp(2, OTHER, IPv4Address("10.0.0.7"), V4), V4) is None
    assert answer_from(unsolicited_na_frame(OTHER, V6), V6) == OTHER
    na = unsolicited_na_frame(OTHER, V6)
    assert answer_from(na[:78], V6) == na[6:12]  # no option: the Ethernet source
    assert answer_from(na, IPv6Address("fd00::101")) is None
    assert answer_from(ns_probe_frame(OTHER, V6), V6) is None
    assert mac_text(OTHER) == "02:42:ac:11:00:02"


@given(st.binary(max_size=120))
def test_garbage_is_never_an_answer_and_never_raises(data: bytes) -> None:
    for a in (V4, V6):
        got = answer_from(data, a)
        assert got is None or len(got) == 6


def test_the_filters_let_through_only_what_could_answer() -> None:
    f4, f6 = accept_filter(V4), accept_filter(V6)
    assert run_bpf(f4, arp(2, OTHER, V4, IPv4Address("0.0.0.0")))
    assert run_bpf(f4, garp_frame(OTHER, V4))
    assert not run_bpf(f4, arp_probe_frame(MAC, V4))  # our own probe (sender 0.0.0.0)
    assert not run_bpf(f4, arp(2, OTHER, IPv4Address("10.0.0.7"), V4))
    assert run_bpf(f6, unsolicited_na_frame(OTHER, V6))
    assert not run_bpf(f6, unsolicited_na_frame(OTHER, IPv6Address("fd00::101")))
    assert not run_bpf(f6, ns_probe_frame(MAC, V6))
    assert not run_bpf(f6, b"\x00" * 40)
    for frame in (garp_frame(OTHER, V4), unsolicited_na_frame(OTHER, V6)):
        assert run_bpf(DROP_ALL, frame) == 0


@given(st.binary(min_size=60, max_size=120))
def test_the_filters_agree_with_answer_from(data: bytes) -> None:
    frame = bytearray(data)
    frame[12:14] = b"\x08\x06"
    frame[20:22] = b"\x00\x02"
    frame[28:32] = V4.packed  # an ARP reply from V4, the rest random
    assert bool(run_bpf(accept_filter(V4), bytes(frame))) == (answer_from(bytes(frame), V4)
                                                              is not None)
