"""Half-open TCP checks for every real server of this process on one raw socket, sent and
read in batches on a coarse tick: what makes checking 200 servers every 100 ms cheap.

A connect check costs a socket, a handshake, the server's accept and a close per check, and
a wake-up of the event loop per check; here a check is one precomputed SYN sent on a shared
raw socket (synpacket.py), and the answers of a whole tick are read at the next tick in one
wake-up. The director's kernel resets each half-open connection (it has no socket on the
probe's port), so the server keeps nothing. IPv4 only (IPv6 servers keep connect checks),
and only with CAP_NET_RAW: `SynProbe.open` says why it cannot, and the prober then falls
back to connect checks.

- `SynProbe`: the raw socket (IP_HDRINCL, a BPF filter that passes only answers to the
  probes' source ports, 61000-65535: above Linux's ephemeral range) and a slot per server:
  its own source port and its SYN built once, each probe writing only a random sequence
  number and the checksum. `answers` drains the socket. 4,536 slots: servers beyond them
  keep connect checks.
- `SynChecks`: the schedule. Each server is probed at its own interval, its first probe
  spread over the interval as the prober spreads its tasks; every wake-up is rounded up to
  a tick (`tick_for`: a quarter of the smallest timeout, 5 to 25 ms), so that the checks due in one tick
  share one wake-up, and a check's timeout is judged at the first tick after it.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import ipaddress
import itertools
import math
import os
import socket
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vigil.balancer import synpacket
from vigil.balancer.checks import Result
from vigil.balancer.model import Check, Endpoint

PORTS = (61000, 65535)  # above Linux's ephemeral range (32768-60999): a slot each
SOURCE_TTL = 5.0  # seconds a source address found for a server is reused
MIN_TICK, MAX_TICK = 0.005, 0.025
_SO_ATTACH_FILTER = 26
_SO_TIMESTAMP = 29


class SynProbe:
    """The raw socket and a slot per checked server: its own source port and its SYN,
    prepared (synpacket.Template). At most one probe per slot is in flight."""

    def __init__(self, sock: socket.socket, ports: tuple[int, int] = PORTS) -> None:
        self.sock = sock
        self._free = list(range(ports[1], ports[0] - 1, -1))  # pop() gives the lowest
        self._slots: dict[int, _Slot] = {}  # source port -> slot
        self._filter: object = None  # the BPF program's buffer
        self._seqs: list[int] = []

    @classmethod
    def open(cls, ports: tuple[int, int] = PORTS) -> SynProbe:
        """The raw socket, filtered; OSError (EPERM without CAP_NET_RAW) when it cannot be."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK |
                             socket.SOCK_CLOEXEC, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
            program = synpacket.port_filter(*ports)
            code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i)
                                                        for i in program))
            sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER,
                            struct.pack("HL", len(program), ctypes.addressof(code)))
            probe = cls(sock, ports)
            probe._filter = code  # the kernel copied it; kept alive all the same
            while True:  # what came in before the filter was attached
                try:
                    sock.recv(65536)
                except BlockingIOError:
                    break
        except BaseException:
            sock.close()
            raise
        return probe

    def close(self) -> None:
        self.sock.close()

    def slot(self, dst: ipaddress.IPv4Address, port: int) -> int | None:
        """A slot for checking dst:port (its token, the source port); None when all
        PORTS are taken."""
        if not self._free:
            return None
        sport = self._free.pop()
        self._slots[sport] = _Slot(dst, str(dst), dst.packed, port)
        return sport

    def release(self, token: int) -> None:
        if self._slots.pop(token, None) is not None:
            self._free.append(token)

    def send(self, token: int, now: float) -> None:
        """Send the slot's SYN. OSError when it cannot be sent (no route, say): the check
        failed. Its source address is asked of the kernel again every SOURCE_TTL."""
        s = self._slots[token]
        if s.template is None or now - s.source_at >= SOURCE_TTL:
            src = _source(s.text)
            if s.template is None or src != s.source:
                s.template = synpacket.Template(src, s.dst, token, s.port)
                s.source = src
            s.source_at = now
        s.seq = self._random()
        self.sock.sendto(s.template.fill(s.seq), (s.text, 0))
        s.sent = time.time()
        s.waiting = True

    def _random(self) -> int:
        """A random sequence number, from the kernel's CSPRNG drawn 1,024 at a time (one
        getrandom call per 1,024 probes, not one each)."""
        if not self._seqs:
            self._seqs = list(struct.unpack("1024I", os.urandom(4096)))
        return self._seqs.pop()

    def forget(self, token: int) -> None:
        """The slot's probe in flight, if any, no longer counts (its timeout passed)."""
        s = self._slots.get(token)
        if s is not None:
            s.waiting = False

    def answers(self) -> list[tuple[int, bool, float]]:
        """The probes answered since the last call: (token, port open, seconds from send to
        the answer's arrival by the kernel's timestamp). Anything else is dropped."""
        out: list[tuple[int, bool, float]] = []
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(128, 64)
            except BlockingIOError:
                return out
            except InterruptedError:
                continue
            answer = synpacket.parse(data)
            if answer is None:
                continue
            s = self._slots.get(answer.dport)
            if s is None or not s.waiting or s.packed != answer.src or \
                    s.port != answer.sport:
                continue
            ok = synpacket.verdict(answer, s.seq)
            if ok is None:
                continue
            s.waiting = False
            out.append((answer.dport, ok, max(0.0, _arrival(anc) - s.sent)))


@dataclass(slots=True)
class _Slot:
    dst: ipaddress.IPv4Address
    text: str
    packed: bytes
    port: int
    template: synpacket.Template | None = None
    source: ipaddress.IPv4Address | None = None
    source_at: float = 0.0
    seq: int = 0
    sent: float = 0.0
    waiting: bool = False


def _source(dst: str) -> ipaddress.IPv4Address:
    """The address the kernel would send from to `dst` (a UDP socket's connect picks it,
    sending nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect((dst, 9))
        return ipaddress.IPv4Address(udp.getsockname()[0])


def _arrival(anc: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMP and len(data) >= 16:
            sec, usec = struct.unpack_from("qq", data)
            return float(sec + usec / 1e6)
    return time.time()


@dataclass(slots=True, eq=False)
class _Entry:
    key: Any
    check: Check
    token: int  # its slot in the probe
    next_at: float
    timeout_why: str
    waiting: bool = False
    deadline: float = 0.0
    gen: int = 0  # the one heap item that is current: any other is stale
    live: bool = True

    def due(self) -> float:
        return self.deadline if self.waiting else self.next_at


Record = Callable[[Any, Result], None]


class SynChecks:
    """The tcp checks of IPv4 servers, on one SynProbe: `add`, `remove`, `run`. Each tick is
    a timer callback of the event loop, not a task: a task woken by a timer costs the loop
    two iterations, a callback one. What is due next is kept in a heap (one current item per
    server, stale ones skipped when they surface), so that a tick touches only the servers
    due in it, never all of them."""

    def __init__(self, probe: SynProbe, record: Record) -> None:
        self.probe = probe
        self.record = record
        self._entries: dict[Any, _Entry] = {}
        self._by_token: dict[int, _Entry] = {}
        self._heap: list[tuple[float, int, _Entry]] = []
        self._gen = itertools.count()
        self._tick = MAX_TICK
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    @staticmethod
    def fits(check: Check, server: Endpoint) -> bool:
        return check.type == "tcp" and server.address.version == 4

    def add(self, key: Any, check: Check, server: Endpoint, name: str) -> bool:
        """Check `server` from now on; False when the probe has no slot left for it."""
        token = self.probe.slot(ipaddress.IPv4Address(int(server.address)),
                                check.port or server.port)
        if token is None:
            return False
        now = time.monotonic()  # the event loop's clock
        spread = zlib.crc32(name.encode()) % 1000 / 1000
        e = _Entry(key, check, token, now + check.interval * spread,
                   f"timeout after {round(check.timeout * 1000)}ms")
        self._entries[key] = e
        self._by_token[token] = e
        self._push(e)
        self._retick()
        self._arm(now)
        return True

    def remove(self, key: Any) -> None:
        e = self._entries.pop(key, None)
        if e is not None:
            e.live = False
            self.probe.release(e.token)
            del self._by_token[e.token]
        self._retick()

    def tick(self) -> float:
        """The wake-up grid of the smallest timeout (tick_for)."""
        return self._tick

    def _retick(self) -> None:
        self._tick = min((tick_for(e.check) for e in self._entries.values()), default=MAX_TICK)

    def _push(self, e: _Entry) -> None:
        e.gen = next(self._gen)
        heapq.heappush(self._heap, (e.due(), e.gen, e))

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._arm(self._loop.time())
            await asyncio.Event().wait()
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self._loop = self._timer = None
            self.probe.close()

    def _arm(self, now: float) -> None:
        """Have `_wake` called at the next tick that has something due, unless earlier."""
        if self._loop is None:
            return
        wake = self.next_wake(now)
        if wake is None or wake >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = wake
        self._timer = self._loop.call_at(wake, self._wake)

    def _wake(self) -> None:
        assert self._loop is not None
        self._timer, self._timer_at = None, math.inf
        now = self._loop.time()
        self.step(now)
        self._arm(now)

    def step(self, now: float) -> None:
        """One tick: the answers in, the timeouts out, the probes that are due sent."""
        for token, ok, latency in self.probe.answers():
            e = self._by_token.get(token)
            if e is None or not e.waiting:
                continue
            e.waiting = False
            self._push(e)  # due again at next_at, not at its deadline
            self.record(e.key, Result(ok, "ok" if ok else "connect: refused", latency))
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, gen, e = heapq.heappop(heap)
            if gen != e.gen or not e.live:
                continue  # stale: the entry was pushed again since, or removed
            if e.waiting:  # its deadline passed
                self.probe.forget(e.token)
                e.waiting = False
                self.record(e.key, Result(False, e.timeout_why, e.check.timeout))
                if now < e.next_at:
                    self._push(e)
                    continue
            e.next_at += e.check.interval
            if e.next_at < now:  # late (a slow loop): no burst after it
                e.next_at = now + e.check.interval
            try:
                self.probe.send(e.token, now)
            except OSError as err:
                self._push(e)
                self.record(e.key, Result(False, f"{type(err).__name__}: "
                                                 f"{err.strerror or err}"[:160], 0.0))
                continue
            e.waiting = True
            e.deadline = now + e.check.timeout
            self._push(e)

    def next_wake(self, now: float) -> float | None:
        """The next tick at or after the earliest thing due (None: nothing to do)."""
        heap = self._heap
        while heap and (heap[0][1] != heap[0][2].gen or not heap[0][2].live):
            heapq.heappop(heap)  # stale items on top say nothing
        if not heap:
            return None
        return max(now, on_grid(heap[0][0], self._tick))


def tick_for(check: Check) -> float:
    """The wake-up grid of a check: a quarter of its timeout (or interval, if shorter),
    within MIN_TICK and MAX_TICK. Checks that wake on one grid share a wake-up of the event
    loop; a grid no coarser than the interval keeps the interval's rate."""
    return min(MAX_TICK, max(MIN_TICK, min(check.timeout, check.interval) / 4))


def on_grid(t: float, tick: float) -> float:
    """The first multiple of `tick` at or after `t`."""
    return math.ceil(t / tick - 1e-9) * tick

