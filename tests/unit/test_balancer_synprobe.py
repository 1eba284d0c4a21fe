"""balancer/synpacket.py (the half-open check's packets, sans IO) and synprobe.SynChecks (its
schedule, on a fake probe). The raw socket itself is tested in namespaces
(tests/integration/test_balancer_checks.py)."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.balancer import synpacket
from vigil.balancer.checks import Result
from vigil.balancer.model import Check, Endpoint
from vigil.balancer.synprobe import MAX_TICK, MIN_TICK, SynChecks, on_grid

SRC, DST = ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.2")


def answer(seq_acked: int, flags: int, sport: int = 80, dport: int = 61000,
           src: ipaddress.IPv4Address = DST, ihl: int = 5, frag: int = 0x4000) -> bytes:
    """An IPv4 packet from `src` carrying a TCP segment (what a server answers)."""
    options = b"\0" * (ihl * 4 - 20)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 12345, seq_acked & 0xFFFFFFFF, 0x50, flags,
                      65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(tcp), 0, frag,
                     64, 6, 0, src.packed, SRC.packed)
    return ip + options + tcp


def test_a_syn_is_a_valid_ipv4_tcp_packet() -> None:
    pkt = synpacket.syn(SRC, DST, 61000, 80, 0xDEADBEEF)
    assert synpacket.checksum(pkt[:20]) == 0  # the IP header's checksum verifies
    tcp = pkt[20:]
    pseudo = SRC.packed + DST.packed + struct.pack("!BBH", 0, 6, len(tcp))
    assert synpacket.checksum(pseudo + tcp) == 0  # and the TCP one
    sport, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB", tcp)
    assert (sport, dport, seq, ack, off >> 4, flags) == (61000, 80, 0xDEADBEEF, 0, 6,
                                                         synpacket.SYN)
    assert struct.unpack_from("!H", pkt, 2)[0] == len(pkt)


def test_verdicts() -> None:
    seq = 1000
    for flags, want in [(synpacket.SYN | synpacket.ACK, True),
                        (synpacket.RST | synpacket.ACK, False),
                        (synpacket.ACK, None), (synpacket.SYN, None), (synpacket.RST, None)]:
        a = synpacket.parse(answer(seq + 1, flags))
        assert a is not None and synpacket.verdict(a, seq) is want, flags
    a = synpacket.parse(answer(0, synpacket.SYN | synpacket.ACK))
    assert a is not None and synpacket.verdict(a, 0xFFFFFFFF) is True  # seq wraps


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.sampled_from([
    synpacket.SYN | synpacket.ACK, synpacket.RST | synpacket.ACK]))
def test_an_answer_counts_only_for_its_own_probe(seq: int, other: int, flags: int) -> None:
    """An attacker who replays any answer it saw (or guesses) counts only if it acknowledges
    this probe's random sequence number."""
    a = synpacket.parse(answer(other + 1, flags))
    assert a is not None
    assert (synpacket.verdict(a, seq) is not None) == (other == seq)


@given(st.binary(max_size=80))
def test_parse_takes_any_bytes(data: bytes) -> None:
    a = synpacket.parse(data)
    assert a is None or isinstance(a.sport, int)


def test_parse_refuses_short_fragmented_and_bad_headers() -> None:
    good = answer(1, synpacket.SYN | synpacket.ACK)
    assert synpacket.parse(good) is not None
    assert synpacket.parse(good[:39]) is None  # TCP header cut
    assert synpacket.parse(answer(1, 0x12, frag=0x2001)) is None  # a later fragment
    assert synpacket.parse(answer(1, 0x12, ihl=4)) is None  # header length below 20
    assert synpacket.parse(answer(1, 0x12, ihl=15)[:60]) is None  # points past the end
    with_options = synpacket.parse(answer(1, 0x12, ihl=6))
    assert with_options is not None and with_options.dport == 61000
    not_tcp = bytearray(good)
    not_tcp[9] = 17
    assert synpacket.parse(bytes(not_tcp)) is None


def run_bpf(program: list[tuple[int, int, int, int]], pkt: bytes) -> int:
    """The few classic BPF instructions port_filter uses, as the kernel runs them (a load
    past the packet's end drops it)."""
    a = x = pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        try:
            if code == 0x28:
                a = struct.unpack_from("!H", pkt, k)[0]
            elif code == 0xB1:
                x = (pkt[k] & 0x0F) * 4
            elif code == 0x48:
                a = struct.unpack_from("!H", pkt, x + k)[0]
            elif code == 0x06:
                return k
            elif code in (0x45, 0x35, 0x25):
                hit = a & k if code == 0x45 else a >= k if code == 0x35 else a > k
                pc += jt if hit else jf
            else:
                raise AssertionError(f"opcode {code:#x}")
        except (struct.error, IndexError):
            return 0


def test_the_socket_filter_passes_only_answers_to_the_probe_ports() -> None:
    prog = synpacket.port_filter(61000, 61999)
    assert all(0 <= jt < 256 and 0 <= jf < 256 for _, jt, jf, _ in prog)
    for dport, want in [(61000, True), (61500, True), (61999, True), (60999, False),
                        (62000, False), (80, False), (443, False)]:
        assert bool(run_bpf(prog, answer(1, 0x12, dport=dport))) is want, dport
        assert bool(run_bpf(prog, answer(1, 0x12, dport=dport, ihl=7))) is want, dport
    assert run_bpf(prog, answer(1, 0x12, frag=0x2001)) == 0
    assert run_bpf(prog, answer(1, 0x12)[:22]) == 0


# --- the schedule ------------------------------------------------------------------------------


class FakeProbe:
    def __init__(self, slots: int = 1000) -> None:
        self.slots: dict[int, tuple[str, int]] = {}  # token -> (address, port)
        self.sent: list[tuple[str, int, int]] = []  # (address, port, token)
        self.replies: list[tuple[int, bool, float]] = []
        self.forgotten: list[int] = []
        self.released: list[int] = []
        self.fail: OSError | None = None
        self.free = list(range(61000 + slots - 1, 60999, -1))

    def slot(self, dst: ipaddress.IPv4Address, port: int) -> int | None:
        if not self.free:
            return None
        token = self.free.pop()
        self.slots[token] = (str(dst), port)
        return token

    def release(self, token: int) -> None:
        del self.slots[token]
        self.released.append(token)
        self.free.append(token)

    def send(self, token: int, now: float) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((*self.slots[token], token))

    def answers(self) -> list[tuple[int, bool, float]]:
        out, self.replies = self.replies, []
        return out

    def forget(self, token: int) -> None:
        self.forgotten.append(token)

    def close(self) -> None:
        pass


def schedule(n: int, interval: float = 0.1, timeout: float = 0.05, slots: int = 1000,
             ) -> tuple[SynChecks, FakeProbe, list[tuple[str, Result]]]:
    probe = FakeProbe(slots)
    got: list[tuple[str, Result]] = []
    s = SynChecks(probe, lambda key, result: got.append((key, result)))  # type: ignore[arg-type]
    check = Check(type="tcp", interval=interval, timeout=timeout)
    for i in range(n):
        s.add(f"s{i}", check, Endpoint(ipaddress.ip_address(f"10.0.{i // 250}.{i % 250 + 1}"),
                                       80), f"s{i}")
    return s, probe, got


def test_every_server_is_probed_once_per_interval_on_few_wakeups() -> None:
    s, probe, got = schedule(200)
    assert s.tick() == 0.0125
    now, wakeups = min(e.next_at for e in s._entries.values()), 0
    end = now + 1.0
    while now < end:
        s.step(now)
        for _, _, token in probe.sent[len(got):]:  # every probe answered at once: up
            probe.replies.append((token, True, 0.0002))
        wake = s.next_wake(now)
        assert wake is not None and wake > now
        assert abs(wake / s.tick() - round(wake / s.tick())) < 1e-6  # on the grid
        now, wakeups = wake, wakeups + 1
    counts: dict[str, int] = {}
    for key, r in got:
        assert r.ok and r.why == "ok"
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 200 and set(counts.values()) <= {9, 10, 11}, set(counts.values())
    assert wakeups <= 1.0 / s.tick() + 1  # a wake-up per tick at most, not per check


def test_a_probe_without_answer_times_out_at_the_first_tick_after_its_timeout() -> None:
    s, probe, got = schedule(1, interval=1.0, timeout=0.3)
    (e,) = s._entries.values()
    start = e.next_at
    s.step(start)
    assert len(probe.sent) == 1 and not got
    s.step(start + 0.29)
    assert not got
    wake = s.next_wake(start + 0.29)
    assert wake is not None and start + 0.3 <= wake < start + 0.3 + s.tick()
    s.step(wake)
    assert got == [("s0", Result(False, "timeout after 300ms", 0.3))]
    assert probe.forgotten == [probe.sent[0][2]]
    probe.replies.append((probe.sent[0][2], True, 0.31))  # too late: never counts
    s.step(wake + 0.01)
    assert len(got) == 1


def test_refused_late_and_unsendable_probes() -> None:
    s, probe, got = schedule(1, interval=0.1, timeout=0.05)
    (e,) = s._entries.values()
    t = e.next_at
    s.step(t)
    probe.replies.append((probe.sent[-1][2], False, 0.001))
    s.step(t + 0.0125)
    assert got[-1] == ("s0", Result(False, "connect: refused", 0.001))
    s.step(t + 5.0)  # the loop was late by 50 intervals: one probe, no burst
    assert len(probe.sent) == 2 and e.next_at == pytest.approx(t + 5.1)
    probe.replies.append((probe.sent[-1][2], True, 0.001))
    probe.fail = OSError(101, "Network is unreachable")
    s.step(t + 5.1)  # the answer, then the next probe cannot go
    assert [r.ok for _, r in got[-2:]] == [True, False]
    assert got[-1][1].why == "OSError: Network is unreachable"


def test_a_removed_server_is_forgotten_and_its_answer_ignored() -> None:
    s, probe, got = schedule(2)
    t = max(e.next_at for e in s._entries.values())
    s.step(t)
    assert len(probe.sent) == 2
    token = s._entries["s0"].token
    s.remove("s0")
    probe.replies.extend((token, True, 0.0) for _, _, token in probe.sent)
    s.step(t + 0.0125)
    assert [k for k, _ in got] == ["s1"]
    assert probe.released == [token]  # its slot is free for another server


def test_servers_beyond_the_slots_are_refused_for_connect_checks() -> None:
    s, probe, _ = schedule(3, slots=2)
    assert len(s._entries) == 2 and not probe.free
    assert not s.add("x", Check(type="tcp"), Endpoint(ipaddress.ip_address("10.0.9.1"), 80), "x")
    s.remove("s0")
    assert s.add("x", Check(type="tcp"), Endpoint(ipaddress.ip_address("10.0.9.1"), 80), "x")


@given(st.integers(0, 2**32 - 1), st.integers(1, 65535), st.integers(61000, 65535))
def test_a_template_makes_the_same_syn_as_building_it_whole(seq: int, dport: int,
                                                            sport: int) -> None:
    t = synpacket.Template(SRC, DST, sport, dport)
    t.fill(12345)  # a probe before: nothing of it stays
    assert bytes(t.fill(seq)) == synpacket.syn(SRC, DST, sport, dport, seq)


def test_the_tick_follows_the_smallest_timeout_within_bounds() -> None:
    assert schedule(1, timeout=1.0)[0].tick() == MAX_TICK
    assert schedule(1, timeout=0.01)[0].tick() == MIN_TICK
    assert schedule(0)[0].next_wake(0.0) is None


class Reference:
    """The schedule as first written (every entry looked at on every tick, O(servers)): what
    the heap must do, step for step."""

    def __init__(self, probe: FakeProbe, record: Callable[[str, Result], None]) -> None:
        self.probe, self.record = probe, record
        self.entries: dict[str, dict[str, Any]] = {}

    def add(self, key: str, check: Check, next_at: float) -> None:
        token = self.probe.slot(DST, 80)
        self.entries[key] = {"check": check, "token": token, "next_at": next_at,
                             "waiting": False, "deadline": 0.0}

    def remove(self, key: str) -> None:
        self.probe.release(self.entries.pop(key)["token"])

    def step(self, now: float) -> None:
        by_token = {e["token"]: k for k, e in self.entries.items()}
        for token, ok, latency in self.probe.answers():
            key = by_token.get(token)
            if key is None or not self.entries[key]["waiting"]:
                continue
            self.entries[key]["waiting"] = False
            self.record(key, Result(ok, "ok" if ok else "connect: refused", latency))
        for key, e in self.entries.items():
            c = e["check"]
            if e["waiting"]:
                if now < e["deadline"]:
                    continue
                e["waiting"] = False
                self.record(key, Result(False, f"timeout after {round(c.timeout * 1000)}ms",
                                        c.timeout))
            if now < e["next_at"]:
                continue
            e["next_at"] += c.interval
            if e["next_at"] < now:
                e["next_at"] = now + c.interval
            try:
                self.probe.send(e["token"], now)
            except OSError as err:
                self.record(key, Result(False, f"OSError: {err.strerror}", 0.0))
                continue
            e["waiting"], e["deadline"] = True, now + c.timeout

    def due(self) -> float | None:
        return min((e["deadline"] if e["waiting"] else e["next_at"]
                    for e in self.entries.values()), default=None)


CHECKS = [Check(type="tcp", interval=i, timeout=t)
          for i, t in ((0.1, 0.05), (0.2, 0.2), (0.05, 0.08), (1.0, 0.3))]
OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 7), st.sampled_from(range(len(CHECKS)))),
    st.tuples(st.just("remove"), st.integers(0, 7)),
    st.tuples(st.just("answer"), st.integers(0, 3), st.booleans()),  # one of the last probes
    st.tuples(st.just("answer"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("fail"), st.booleans()),
    st.tuples(st.just("wait"), st.floats(0, 0.3)),
    st.tuples(st.just("wait"), st.just(0.0)),
), max_size=60)


@settings(max_examples=400)
@given(OPS)
def test_the_heap_schedules_exactly_as_looking_at_every_server(ops: list[tuple[Any, ...]]) -> None:
    """Any interleaving of adds, removes (a slot reused by another server), answers, unsendable
    probes and late ticks: the same probes sent and the same results, tick for tick, as the
    O(servers) schedule; next_wake is the first tick at or after the earliest thing due."""
    clock = [100.0]
    heap_probe, ref_probe = FakeProbe(), FakeProbe()
    got_heap: list[tuple[str, Result]] = []
    got_ref: list[tuple[str, Result]] = []
    s = SynChecks(heap_probe, lambda k, r: got_heap.append((k, r)))  # type: ignore[arg-type]
    ref = Reference(ref_probe, lambda k, r: got_ref.append((k, r)))
    with mock.patch("time.monotonic", lambda: clock[0]):
        for op in ops:
            if op[0] == "add" and f"s{op[1]}" not in s._entries:
                key, check = f"s{op[1]}", CHECKS[op[2]]
                assert s.add(key, check, Endpoint(DST, 80), key)
                ref.add(key, check, s._entries[key].next_at)
            elif op[0] == "remove" and f"s{op[1]}" in s._entries:
                s.remove(f"s{op[1]}")
                ref.remove(f"s{op[1]}")
            elif op[0] == "answer" and heap_probe.sent:
                token = heap_probe.sent[-1 - min(op[1], len(heap_probe.sent) - 1)][2]
                heap_probe.replies.append((token, op[2], 0.001))
                ref_probe.replies.append((token, op[2], 0.001))
            elif op[0] == "fail":
                heap_probe.fail = ref_probe.fail = OSError(101, "unreachable") if op[1] else None
            elif op[0] == "wait":
                wake = s.next_wake(clock[0])
                due = ref.due()
                assert (wake is None) == (due is None)
                if wake is not None:
                    assert wake == max(clock[0], on_grid(due, s.tick()))
                    clock[0] = wake + op[1]  # on time, or late
                s.step(clock[0])
                ref.step(clock[0])
                assert sorted(heap_probe.sent) == sorted(ref_probe.sent)
                assert sorted(got_heap, key=repr) == sorted(got_ref, key=repr)
