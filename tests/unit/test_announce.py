"""Gratuitous ARP / unsolicited NA frames, byte for byte, and the Announcer's schedule."""

from __future__ import annotations

import asyncio
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.model import ArpSettings
from vigil.resources.announce import Announcer, garp_frame, unsolicited_na_frame

MAC = bytes.fromhex("02aabbccddee")
V4 = IPv4Address("10.199.1.100")
V6 = IPv6Address("fd00:199:1::100")


# ---- frames -------------------------------------------------------------------------------


def test_garp_exact_bytes() -> None:
    expected = bytes.fromhex(
        "ffffffffffff" "02aabbccddee" "0806"  # Ethernet: broadcast, from us, ARP
        "0001" "0800" "06" "04" "0002"  # Ethernet/IPv4, reply
        "02aabbccddee" "0ac70164"  # sender: us, the VIP
        "02aabbccddee" "0ac70164"  # target: us again (see garp_frame), the VIP
    ) + bytes(18)  # padding to the 60-byte Ethernet minimum
    assert garp_frame(MAC, V4) == expected


def test_garp_fields() -> None:
    frame = garp_frame(MAC, V4)
    assert len(frame) == 60
    dst, src, ethertype = struct.unpack("!6s6sH", frame[:14])
    assert (dst, src, ethertype) == (b"\xff" * 6, MAC, 0x0806)
    htype, ptype, hlen, plen, oper, sha, spa, tha, tpa = struct.unpack(
        "!HHBBH6s4s6s4s", frame[14:42]
    )
    assert (htype, ptype, hlen, plen, oper) == (1, 0x0800, 6, 4, 2)
    assert sha == tha == MAC  # tha == sha: Linux's arp_is_garp() for the reply form
    assert IPv4Address(spa) == IPv4Address(tpa) == V4
    assert frame[42:] == bytes(18)


def test_garp_rejects_bad_mac() -> None:
    with pytest.raises(ValueError):
        garp_frame(b"\x01\x02", V4)


def independent_checksum(src: bytes, dst: bytes, icmp: bytes) -> int:
    """One's complement sum written differently from the module: byte pairs, fold at the end."""
    data = src + dst + len(icmp).to_bytes(4, "big") + b"\x00\x00\x00" + bytes([58]) + icmp
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return 0xFFFF - total


def test_na_exact_bytes() -> None:
    frame = unsolicited_na_frame(MAC, V6)
    body = (
        "88" "00" "{csum}"  # ICMPv6 neighbour advertisement, code 0
        "20000000"  # flags: Override only
        "fd000199000100000000000000000100"  # target
        "02" "01" "02aabbccddee"  # option: target link-layer address, 8 bytes
    )
    csum = independent_checksum(V6.packed, IPv6Address("ff02::1").packed,
                                bytes.fromhex(body.format(csum="0000")))
    expected = bytes.fromhex(
        "333300000001" "02aabbccddee" "86dd"  # Ethernet: all-nodes multicast, IPv6
        "60000000" "0020" "3a" "ff"  # IPv6: payload 32, ICMPv6, hop limit 255
        "fd000199000100000000000000000100"  # source: the VIP
        "ff020000000000000000000000000001"  # destination: ff02::1
        + body.format(csum=f"{csum:04x}")
    )
    assert frame == expected


def test_na_fields() -> None:
    frame = unsolicited_na_frame(MAC, V6)
    assert len(frame) == 14 + 40 + 32
    dst, src, ethertype = struct.unpack("!6s6sH", frame[:14])
    assert (dst, src, ethertype) == (bytes.fromhex("333300000001"), MAC, 0x86DD)
    vtf, plen, nxt, hlim, ip_src, ip_dst = struct.unpack("!IHBB16s16s", frame[14:54])
    assert vtf >> 28 == 6 and vtf & 0x0FFFFFFF == 0
    assert (plen, nxt, hlim) == (32, 58, 255)
    assert IPv6Address(ip_src) == V6
    assert IPv6Address(ip_dst) == IPv6Address("ff02::1")
    icmp = frame[54:]
    typ, code, csum, flags, target, opt_type, opt_len, lladdr = struct.unpack(
        "!BBHI16sBB6s", icmp
    )
    assert (typ, code) == (136, 0)
    assert flags == 0x20000000  # Override; not Router (0x80..), not Solicited (0x40..)
    assert IPv6Address(target) == V6
    assert (opt_type, opt_len, lladdr) == (2, 1, MAC)
    zeroed = icmp[:2] + b"\x00\x00" + icmp[4:]
    assert csum == independent_checksum(ip_src, ip_dst, zeroed)


@given(mac=st.binary(min_size=6, max_size=6), ip=st.integers(0, 2**128 - 1))
def test_na_checksum_verifies(mac: bytes, ip: int) -> None:
    """A receiver sums everything, checksum included, and must get 0xffff (i.e. 0 after ~)."""
    addr = IPv6Address(ip)
    frame = unsolicited_na_frame(mac, addr)
    icmp = frame[54:]
    assert independent_checksum(addr.packed, IPv6Address("ff02::1").packed, icmp) in (0, 0xFFFF)


@given(mac=st.binary(min_size=6, max_size=6), ip=st.integers(0, 2**32 - 1))
def test_garp_any_address(mac: bytes, ip: int) -> None:
    frame = garp_frame(mac, IPv4Address(ip))
    assert frame[6:12] == frame[22:28] == frame[32:38] == mac
    assert frame[28:32] == frame[38:42] == IPv4Address(ip).packed


# ---- the Announcer, with a fake sender -----------------------------------------------------


class FakeSender:
    def __init__(self) -> None:
        self.frames: list[tuple[str, bytes]] = []
        self.down: set[str] = set()
        self.closed = False

    def mac(self, ifname: str) -> bytes:
        return MAC

    def send(self, ifname: str, frame: bytes) -> None:
        if ifname in self.down:
            raise OSError(100, "Network is down")
        self.frames.append((ifname, frame))

    def close(self) -> None:
        self.closed = True


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_packet_leaves_inside_announce() -> None:
    sender = FakeSender()
    a = Announcer(sender)
    a.announce("eth0", V4, ArpSettings(count=3, interval=0.01))
    assert sender.frames == [("eth0", garp_frame(MAC, V4))]
    assert a.sent[V4] == 1
    a.announce("eth0", V6, ArpSettings())
    assert sender.frames[-1] == ("eth0", unsolicited_na_frame(MAC, V6))


def drive(a: Announcer, clock: FakeClock, until: float, step: float = 0.001) -> None:
    """Advance the fake clock in steps, letting run() fire whatever is due at each step."""

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(a.run())
        try:
            while clock.now < until - 1e-9:
                clock.now = round(clock.now + step, 6)
                a._wake.set()  # the real clock would have woken it
                for _ in range(3):
                    await asyncio.sleep(0)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())


def test_schedule_bursts_and_refresh() -> None:
    clock = FakeClock()
    sender = FakeSender()
    a = Announcer(sender, clock=clock)
    t0 = clock.now
    settings = ArpSettings(count=3, interval=0.01, repeat_delay=0.1, repeat_count=2, refresh=0.5)
    a.announce("eth0", V4, settings)
    drive(a, clock, t0 + 0.05)
    assert a.sent[V4] == 3  # the first burst
    drive(a, clock, t0 + 0.2)
    assert a.sent[V4] == 5  # plus the second burst of repeat_count
    drive(a, clock, t0 + 1.05)
    assert a.sent[V4] == 5 + 3 + 3  # plus two refresh bursts of count, at 0.5 and 1.0
    a.withdraw(V4)
    drive(a, clock, t0 + 2.1)
    assert a.sent[V4] == 11
    assert a.statistics().announced == ()


def test_withdraw_cancels_the_rest() -> None:
    clock = FakeClock()
    a = Announcer(FakeSender(), clock=clock)
    a.announce("eth0", V4, ArpSettings(count=5, interval=0.01, repeat_delay=0.1))
    a.withdraw(V4)
    drive(a, clock, clock.now + 0.3)
    assert a.sent[V4] == 1
    a.withdraw(V4)  # absent is fine


def test_nothing_scheduled_is_sent_for_an_address_gone_from_the_host() -> None:
    """A daemon frozen between two bursts while its guard removed the address: on waking,
    the overdue burst must not point clients back at this host (the torture saw it)."""
    clock = FakeClock()
    sender = FakeSender()
    here = {V4}
    a = Announcer(sender, clock=clock, is_local=lambda addr: addr in here)
    a.announce("eth0", V4, ArpSettings(count=2, interval=0.01, repeat_delay=0.1,
                                       repeat_count=3, refresh=0.5))
    drive(a, clock, clock.now + 0.05)
    assert a.sent[V4] == 2
    here.clear()  # the guard removed it; the daemon's own stop has not run yet
    drive(a, clock, clock.now + 2.0)
    assert a.sent[V4] == 2 and a.statistics().announced == ()


def test_address_is_local_asks_the_kernel() -> None:
    import ipaddress

    from vigil.resources.announce import address_is_local

    assert address_is_local(ipaddress.ip_address("127.0.0.1"))
    assert not address_is_local(ipaddress.ip_address("192.0.2.123"))  # TEST-NET-1: nobody's


def test_no_second_burst_without_repeat_delay() -> None:
    clock = FakeClock()
    a = Announcer(FakeSender(), clock=clock)
    a.announce("eth0", V4, ArpSettings(count=2, interval=0.01, repeat_delay=0, refresh=0))
    drive(a, clock, clock.now + 2.0, step=0.01)
    assert a.sent[V4] == 2


def test_reannounce_sends_a_burst_now() -> None:
    clock = FakeClock()
    sender = FakeSender()
    a = Announcer(sender, clock=clock)
    assert a.reannounce(V4) is False
    assert sender.frames == []
    a.announce("eth0", V4, ArpSettings(count=2, interval=0.01, repeat_delay=0))
    drive(a, clock, clock.now + 0.1)
    assert a.sent[V4] == 2
    assert a.reannounce(V4) is True
    assert a.sent[V4] == 3  # synchronously
    drive(a, clock, clock.now + 0.1)
    assert a.sent[V4] == 4


def test_announce_again_replaces_the_plan() -> None:
    clock = FakeClock()
    sender = FakeSender()
    a = Announcer(sender, clock=clock)
    a.announce("eth0", V4, ArpSettings(count=3, interval=0.01, repeat_delay=0))
    a.announce("eth1", V4, ArpSettings(count=1, repeat_delay=0))
    drive(a, clock, clock.now + 0.1)
    assert [ifname for ifname, _ in sender.frames] == ["eth0", "eth1"]


def test_send_failures_are_counted_not_raised() -> None:
    clock = FakeClock()
    sender = FakeSender()
    sender.down.add("eth0")
    a = Announcer(sender, clock=clock)
    a.announce("eth0", V4, ArpSettings(count=2, interval=0.01, repeat_delay=0))
    assert (a.sent[V4], a.failed[V4]) == (0, 1)
    sender.down.clear()
    drive(a, clock, clock.now + 0.1)
    assert (a.sent[V4], a.failed[V4]) == (1, 1)
    assert a.statistics().failed == 1


def test_run_with_the_real_clock() -> None:
    """run() sleeps until the next packet is due, with nothing woken by hand."""
    sender = FakeSender()
    a = Announcer(sender)

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(a.run())
        await asyncio.sleep(0)
        a.announce("eth0", V4, ArpSettings(count=3, interval=0.01, repeat_delay=0.05,
                                           repeat_count=2))
        try:
            async with asyncio.timeout(2):
                while a.sent[V4] < 5:
                    await asyncio.sleep(0.005)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert a.sent[V4] == 5


def test_close_closes_the_sender() -> None:
    sender = FakeSender()
    a = Announcer(sender)
    a.announce("eth0", V4, ArpSettings(refresh=1.0))
    a.close()
    assert sender.closed
    assert a.statistics().announced == ()
