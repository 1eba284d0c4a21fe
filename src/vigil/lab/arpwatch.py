"""Who answers ARP for the floating address, seen from the client: the split-brain detector
of the lab's benchmarks.

    python -m vigil.lab.arpwatch --iface eth0 --ip VIP [--interval 0.01] [--duration 60]

Run inside the client's namespace. Every `interval` it broadcasts one ARP request for VIP
(from the interface's own address) and prints each reply as `SEQ MONOTONIC MAC`, SEQ being
the request it answered (the latest one sent). Two different MACs answering the same
request means two nodes held the address at that moment: the client would reach either.
Only replies addressed to this host count (gratuitous announcements are not answers).
Bounded: it stops after `duration` seconds or on SIGTERM.
"""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence

from vigil.resources.announce import BROADCAST_MAC, ETH_P_ARP, MIN_FRAME
from vigil.lab.netns import exit_on_sigterm

SIOCGIFADDR = 0x8915
ARP_REQUEST, ARP_REPLY = 1, 2


def _own_ipv4(sock: socket.socket, iface: str) -> bytes:
    req = struct.pack("256s", iface.encode())
    return fcntl.ioctl(sock.fileno(), SIOCGIFADDR, req)[20:24]


def request_frame(mac: bytes, ip: bytes, target: bytes) -> bytes:
    eth = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, ARP_REQUEST) + mac + ip + b"\0" * 6 + target
    return (eth + arp).ljust(MIN_FRAME, b"\x00")


def parse_reply(frame: bytes, me: bytes, target: bytes) -> bytes | None:
    """The sender MAC of an ARP reply to us about `target`, else None."""
    if len(frame) < 42 or frame[12:14] != struct.pack("!H", ETH_P_ARP):
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
    if op != ARP_REPLY or spa != target or tpa != me:
        return None
    return sha


def watch(iface: str, vip: str, interval: float, duration: float) -> int:
    target = ipaddress.IPv4Address(vip).packed
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    sock.bind((iface, ETH_P_ARP))
    mac = sock.getsockname()[4]
    me = _own_ipv4(sock, iface)
    frame = request_frame(mac, me, target)
    seq = 0
    end = time.monotonic() + duration
    due = time.monotonic()
    while (now := time.monotonic()) < end:
        if now >= due:
            seq += 1
            sock.send(frame)
            due += interval
            if due < now:
                due = now + interval
        ready, _, _ = select.select([sock], [], [], max(0.0, due - time.monotonic()))
        if ready:
            sha = parse_reply(sock.recv(2048), me, target)
            if sha is not None:
                print(f"{seq} {time.monotonic():.6f} {sha.hex(':')}", flush=True)
    return 0


def doubles(lines: Sequence[str]) -> list[tuple[int, list[str]]]:
    """The requests answered by more than one MAC: (seq, macs)."""
    by_seq: dict[int, set[str]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 3:
            by_seq.setdefault(int(parts[0]), set()).add(parts[2])
    return [(s, sorted(m)) for s, m in sorted(by_seq.items()) if len(m) > 1]


def main(argv: Sequence[str] | None = None) -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(prog="python -m vigil.lab.arpwatch", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--ip", required=True)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--duration", type=float, default=60.0)
    a = ap.parse_args(argv)
    if not 0.001 <= a.interval <= 10 or not 0 < a.duration <= 2 * 86400:
        ap.error("interval must be within 1ms..10s and duration within 0..2 days")
    return watch(a.iface, a.ip, a.interval, a.duration)


if __name__ == "__main__":
    sys.exit(main())
