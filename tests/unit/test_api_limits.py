"""The HTTP API's admission rules (vigil.daemon.api.limits), with no sockets: slots per
address and in all, the queue, eviction of stale heads, event streams, bounded refusals."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.daemon.api.limits import (Admission, Admitted, Limits, Phase, Queued, Refused,
                                     address_key)

SMALL = Limits(max_clients=4, per_address=2, max_streams=2, streams_per_address=1,
               max_waiting=3, max_refusing=2, evict_after=2.0)


def fill(adm: Admission, hosts: list[str], now: float = 0.0) -> list[int]:
    ids = list(range(100, 100 + len(hosts)))
    for i, h in zip(ids, hosts):
        assert adm.arrive(i, h, now) == Admitted()
    return ids


def test_per_address_then_queued_then_refused_429_while_others_get_in() -> None:
    adm = Admission(SMALL)
    fill(adm, ["10.0.0.1", "10.0.0.1"])
    assert adm.arrive(1, "10.0.0.1", 0.0) == Queued()
    assert adm.arrive(2, "10.0.0.2", 0.0) == Admitted()
    refused = adm.give_up(1, 1.0)
    assert isinstance(refused, Refused) and (refused.status, refused.code) == (
        429, "too_many_connections") and refused.answer
    assert "10.0.0.1" in refused.message


def test_full_then_queued_then_503() -> None:
    adm = Admission(SMALL)
    fill(adm, ["a", "b", "c", "d"])
    for i in range(4):
        adm.headed(100 + i, 0.0)  # whole heads: nothing to evict
    assert adm.arrive(1, "e", 5.0) == Queued()
    refused = adm.give_up(1, 6.0)
    assert isinstance(refused, Refused) and (refused.status, refused.code) == (503, "busy")


def test_a_leaving_connection_hands_its_slot_to_the_first_waiter_that_fits() -> None:
    adm = Admission(SMALL)
    ids = fill(adm, ["a", "a", "b", "c"])
    assert adm.arrive(1, "a", 0.0) == Queued()  # a has its two
    assert adm.arrive(2, "d", 0.0) == Queued()  # all four taken
    assert adm.arrive(3, "d", 0.0) == Queued()
    assert adm.leave(ids[2], 0.5) == [2]  # b's slot: a still has two, so d's first waiter
    assert adm.phase(2) is Phase.HEAD
    assert adm.leave(ids[0], 0.6) == [1]  # one of a's: a's waiter
    assert adm.give_up(2, 1.0) == Admitted()  # handed a slot as its wait timed out
    assert adm.leave(3, 1.0) == []  # a waiter that goes leaves nothing behind
    assert adm.statistics().waiting == 0


def test_waiting_is_bounded() -> None:
    adm = Admission(SMALL)
    fill(adm, ["a", "b", "c", "d"])
    assert [adm.arrive(i, "e", 0.0) for i in range(3)] == [Queued()] * 3
    refused = adm.arrive(9, "e", 0.0)
    assert isinstance(refused, Refused) and refused.status == 503


def test_when_full_the_stalest_incomplete_head_is_evicted_and_never_a_whole_one() -> None:
    adm = Admission(SMALL)
    ids = fill(adm, ["a", "b"], now=0.0) + fill_more(adm, ["c", "d"], now=1.0)
    adm.headed(ids[0], 0.5)  # the oldest is being answered: not a candidate
    assert adm.arrive(1, "e", 1.9) == Queued()  # b's head is not 2 s old yet
    assert adm.give_up(1, 2.0) == Admitted(evicted=ids[1])  # now it is
    assert adm.phase(ids[1]) is None and adm.statistics().refusing == 1
    assert adm.arrive(2, "f", 2.5) == Queued()  # c and d: 1.5 s
    assert adm.arrive(3, "f", 3.0) == Admitted(evicted=ids[2])
    assert adm.statistics().evicted == 2
    assert adm.statistics().refusing == 2
    adm.leave(ids[1], 3.0)  # the evicted ones, answered, go
    adm.leave(ids[2], 3.0)
    assert adm.statistics().refusing == 0


def fill_more(adm: Admission, hosts: list[str], now: float) -> list[int]:
    ids = list(range(200, 200 + len(hosts)))
    for i, h in zip(ids, hosts):
        assert adm.arrive(i, h, now) == Admitted()
    return ids


def test_eviction_does_not_get_round_the_per_address_limit() -> None:
    adm = Admission(SMALL)
    fill(adm, ["a", "a", "b", "c"])
    assert adm.arrive(1, "a", 10.0) == Queued()  # stale heads, but a has its two
    assert isinstance(adm.give_up(1, 11.0), Refused)


def test_streams_are_limited_per_address_and_in_all() -> None:
    adm = Admission(SMALL)
    a1, a2, b1, c1 = fill(adm, ["a", "a", "b", "c"])
    for i in (a1, a2, b1, c1):
        adm.headed(i, 0.0)
    assert adm.stream(a1, 0.0) is None
    refused = adm.stream(a2, 0.0)
    assert isinstance(refused, Refused) and refused.status == 429
    assert adm.stream(b1, 0.0) is None
    refused = adm.stream(c1, 0.0)
    assert isinstance(refused, Refused) and (refused.status, refused.code) == (503, "busy")
    adm.leave(a1, 1.0)
    assert adm.stream(c1, 1.0) is None
    assert adm.statistics().streams == 2


def test_refusals_in_flight_are_bounded_beyond_that_closed_unanswered() -> None:
    adm = Admission(Limits(max_clients=1, per_address=1, max_waiting=1, max_refusing=2,
                           max_streams=1, streams_per_address=1))
    adm.arrive(100, "a", 0.0)
    adm.headed(100, 0.0)
    adm.arrive(1, "b", 0.0)  # the one waiting place
    verdicts = [adm.arrive(i, "b", 0.0) for i in (2, 3, 4)]
    assert [v.answer for v in verdicts if isinstance(v, Refused)] == [True, True, False]
    assert adm.statistics().dropped == 1
    adm.leave(2, 0.0)
    v = adm.arrive(5, "b", 0.0)
    assert isinstance(v, Refused) and v.answer


@pytest.mark.parametrize("host,key", [
    ("192.0.2.7", "192.0.2.7"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::9", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("?", "?"),
])
def test_address_key(host: str, key: str) -> None:
    assert address_key(host) == key


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        Limits(head_timeout=0)
    with pytest.raises(ValueError):
        Limits(max_clients=4, per_address=8)


ops = st.lists(st.tuples(st.sampled_from(["arrive", "headed", "stream", "leave", "give_up"]),
                         st.integers(0, 11), st.sampled_from(["a", "b", "c", "::1", "::2"]),
                         st.floats(0.0, 1.5)), max_size=200)


@settings(max_examples=300)
@given(ops)
def test_no_sequence_breaks_a_limit_or_loses_a_connection(
        script: list[tuple[str, int, str, float]]) -> None:
    lim = Limits(max_clients=5, per_address=3, max_streams=3, streams_per_address=2,
                 max_waiting=3, max_refusing=2, evict_after=1.0)
    adm = Admission(lim)
    now = 0.0
    where: dict[int, str] = {}  # the test's own view: conn -> slot/waiting/refusing
    counter = itertools.count()
    for op, n, host, dt in script:
        now += dt
        v: Admitted | Queued | Refused | None = None
        live = sorted(where)
        conn = live[n % len(live)] if live and op != "arrive" else next(counter)
        if op == "arrive":
            v = adm.arrive(conn, host, now)
            where[conn] = {Admitted: "slot", Queued: "waiting", Refused: "refusing"}[type(v)]
            if isinstance(v, Refused) and not v.answer:
                del where[conn]  # closed at once: nothing to leave
        elif op == "headed" and adm.phase(conn) is Phase.HEAD:
            adm.headed(conn, now)
        elif op == "stream" and adm.phase(conn) is Phase.BUSY:
            adm.stream(conn, now)
        elif op == "leave" and conn in where:
            for handed in adm.leave(conn, now):
                assert where[handed] == "waiting"
                where[handed] = "slot"
            del where[conn]
        elif op == "give_up" and where.get(conn) == "waiting":
            v = adm.give_up(conn, now)
            where[conn] = "slot" if isinstance(v, Admitted) else "refusing"
            if isinstance(v, Refused) and not v.answer:
                del where[conn]
        if isinstance(v, Admitted) and v.evicted is not None:
            assert where[v.evicted] == "slot"
            where[v.evicted] = "refusing"
        s = adm.statistics()
        slots = [c for c, w in where.items() if w == "slot"]
        assert s.clients == len(slots) <= lim.max_clients
        assert s.waiting == sum(w == "waiting" for w in where.values()) <= lim.max_waiting
        assert s.refusing == sum(w == "refusing" for w in where.values())
        assert s.streams <= lim.max_streams
        per_key: dict[str, int] = {}
        for c in slots:
            assert adm.phase(c) is not None
            k = adm._slots[c].key
            per_key[k] = per_key.get(k, 0) + 1
        assert all(v <= lim.per_address for v in per_key.values())
    for conn in list(where):
        adm.leave(conn, now)
    s = adm.statistics()
    assert (s.clients, s.waiting, s.refusing, s.streams) == (0, 0, 0, 0)
