"""The HTTP API's admission rules (vigil.daemon.api.limits), with no sockets: slots per
address and in all, the overflow (with the refusal it carries), event streams, bounded
refusals."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.daemon.api.limits import Admission, Admitted, Limits, Phase, Refused, address_key

SMALL = Limits(max_clients=4, per_address=2, max_overflow=3, max_streams=2,
               streams_per_address=1, max_refusing=2)


def fill(adm: Admission, hosts: list[str], first: int = 100) -> list[int]:
    ids = list(range(first, first + len(hosts)))
    for i, h in zip(ids, hosts):
        assert adm.arrive(i, h) == Admitted()
    return ids


def test_past_its_address_slots_a_connection_is_in_the_overflow_carrying_a_429() -> None:
    adm = Admission(SMALL)
    fill(adm, ["10.0.0.1", "10.0.0.1"])
    v = adm.arrive(1, "10.0.0.1")
    assert isinstance(v, Admitted) and v.overflow is not None
    assert (v.overflow.status, v.overflow.code) == (429, "too_many_connections")
    assert "10.0.0.1" in v.overflow.message
    assert adm.arrive(2, "10.0.0.2") == Admitted()  # another address has a slot
    assert adm.statistics().clients == 3 and adm.statistics().overflow == 1


def test_past_all_slots_the_overflow_carries_a_503_and_a_leaving_slot_is_reused() -> None:
    adm = Admission(SMALL)
    ids = fill(adm, ["a", "b", "c", "d"])
    v = adm.arrive(1, "e")
    assert isinstance(v, Admitted) and v.overflow is not None
    assert (v.overflow.status, v.overflow.code) == (503, "busy")
    adm.leave(ids[0])
    assert adm.arrive(2, "e") == Admitted()


def test_the_overflow_is_bounded_in_all_and_per_address_then_refused() -> None:
    adm = Admission(SMALL)
    fill(adm, ["a", "a", "b", "c"])
    over = [adm.arrive(i, "a") for i in (1, 2)]
    assert all(isinstance(v, Admitted) and v.overflow for v in over)
    v = adm.arrive(3, "a")  # a has its two slots and its two places in the overflow
    assert isinstance(v, Refused) and (v.status, v.code) == (429, "too_many_connections")
    assert v.answer
    assert isinstance(adm.arrive(4, "z"), Admitted)  # the overflow's third place
    v = adm.arrive(5, "y")
    assert isinstance(v, Refused) and (v.status, v.code) == (503, "busy")


def test_refusals_in_flight_are_bounded_beyond_that_closed_unanswered() -> None:
    adm = Admission(Limits(max_clients=1, per_address=1, max_overflow=1, max_refusing=2,
                           max_streams=1, streams_per_address=1))
    fill(adm, ["a"])
    assert isinstance(adm.arrive(1, "b"), Admitted)  # the overflow's one place
    verdicts = [adm.arrive(i, "c") for i in (2, 3, 4)]
    assert [v.answer for v in verdicts if isinstance(v, Refused)] == [True, True, False]
    assert adm.statistics().dropped == 1 and adm.statistics().refusing == 2
    adm.leave(2)
    v = adm.arrive(5, "c")
    assert isinstance(v, Refused) and v.answer


def test_streams_need_a_slot_and_are_limited_per_address_and_in_all() -> None:
    adm = Admission(SMALL)
    a1, a2, b1, c1 = fill(adm, ["a", "a", "b", "c"])
    over = 9
    assert isinstance(adm.arrive(over, "d"), Admitted)
    for i in (a1, a2, b1, c1, over):
        adm.headed(i)
    assert adm.stream(a1) is None
    refused = adm.stream(a2)
    assert isinstance(refused, Refused) and refused.status == 429
    refused = adm.stream(over)
    assert isinstance(refused, Refused) and (refused.status, refused.code) == (503, "busy")
    assert adm.stream(b1) is None
    refused = adm.stream(c1)
    assert isinstance(refused, Refused) and (refused.status, refused.code) == (503, "busy")
    adm.leave(a1)
    assert adm.stream(c1) is None
    assert adm.phase(c1) is Phase.STREAM and adm.statistics().streams == 2


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


ops = st.lists(st.tuples(st.sampled_from(["arrive", "arrive", "headed", "stream", "leave"]),
                         st.integers(0, 11), st.sampled_from(["a", "b", "c", "::1", "::2"])),
               max_size=200)


@settings(max_examples=300)
@given(ops)
def test_no_sequence_breaks_a_limit_or_loses_a_connection(
        script: list[tuple[str, int, str]]) -> None:
    lim = Limits(max_clients=5, per_address=3, max_overflow=4, max_streams=3,
                 streams_per_address=2, max_refusing=2)
    adm = Admission(lim)
    where: dict[int, tuple[str, str]] = {}  # the test's own view: conn -> (place, key)
    counter = itertools.count()
    for op, n, host in script:
        live = sorted(where)
        conn = live[n % len(live)] if live and op != "arrive" else next(counter)
        if op == "arrive":
            v = adm.arrive(conn, host)
            if isinstance(v, Admitted):
                where[conn] = ("overflow" if v.overflow else "slot", address_key(host))
            elif v.answer:
                where[conn] = ("refusing", address_key(host))
        elif op == "headed" and adm.phase(conn) is Phase.HEAD:
            adm.headed(conn)
        elif op == "stream" and adm.phase(conn) is Phase.BUSY:
            if adm.stream(conn) is None:
                assert where[conn][0] == "slot"
        elif op == "leave" and conn in where:
            adm.leave(conn)
            del where[conn]
        s = adm.statistics()
        places = [place for place, _ in where.values()]
        assert s.clients == places.count("slot") <= lim.max_clients
        assert s.overflow == places.count("overflow") <= lim.max_overflow
        assert s.refusing == places.count("refusing") <= lim.max_refusing
        assert s.streams <= lim.max_streams
        for place in ("slot", "overflow"):
            for key in {k for _, k in where.values()}:
                assert sum(1 for p, k in where.values()
                           if (p, k) == (place, key)) <= lim.per_address
    for conn in list(where):
        adm.leave(conn)
    s = adm.statistics()
    assert (s.clients, s.overflow, s.refusing, s.streams) == (0, 0, 0, 0)
