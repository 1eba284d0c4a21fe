"""Ping nodes (Heartbeat's `ping` + ipfail): ICMP echo from the daemon itself, no `ping`.

Task: `run()` sends an echo request to every ping node each `ping_interval` through one raw
ICMP socket and records the replies; `count(now)` says how many answered within `deadping`.
Until every node has answered once or `deadping` has passed since start, the count is None
(unknown), so that a node starting up does not look worse than its peer and hand its groups
away before its first replies could arrive.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Sequence

from vigil.model import IPAddress
from vigil.resources.announce import inet_checksum as checksum

ECHO_REQUEST, ECHO_REPLY = 8, 0


def echo_request(ident: int, seq: int) -> bytes:
    payload = b"vigil-ping"
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, checksum(header + payload), ident,
                       seq) + payload


def parse_reply(packet: bytes, ident: int) -> bool:
    """Is this raw IPv4 packet an echo reply to us?"""
    if len(packet) < 20:
        return False
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 8:
        return False
    kind, _code, _sum, rid, _seq = struct.unpack_from("!BBHHH", packet, ihl)
    return bool(kind == ECHO_REPLY and rid == ident)


class Pinger:
    def __init__(self, targets: Sequence[IPAddress], interval: float, deadping: float) -> None:
        self.targets = [str(t) for t in targets]
        self.interval = interval
        self.deadping = deadping
        self.ident = os.getpid() & 0xFFFF
        self.started = time.monotonic()
        self.last_reply: dict[str, float] = {}
        self.sent = 0

    def count(self, now: float) -> int | None:
        if len(self.last_reply) < len(self.targets) and now < self.started + self.deadping:
            return None
        return sum(1 for t in self.targets
                   if now - self.last_reply.get(t, -1e9) <= self.deadping)

    async def run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._read, sock)
        seq = 0
        try:
            while True:
                seq = (seq + 1) & 0xFFFF
                packet = echo_request(self.ident, seq)
                for t in self.targets:
                    try:
                        sock.sendto(packet, (t, 0))
                        self.sent += 1
                    except OSError:
                        pass  # unreachable right now: no reply is the answer
                await asyncio.sleep(self.interval)
        finally:
            loop.remove_reader(sock.fileno())
            sock.close()

    def _read(self, sock: socket.socket) -> None:
        while True:
            try:
                packet, (source, _port) = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if source in self.targets and parse_reply(packet, self.ident):
                self.last_reply[source] = time.monotonic()
