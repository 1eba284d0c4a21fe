"""Witness asks and replies, and the disk poison pill: parsers never raise, round trips hold,
and a pill only ever stops the life it was written for."""

from __future__ import annotations

from hypothesis import given, strategies as st

from tests.unit.sim import KEY, Sim
from vigil.wire import frame as wire
from vigil.wire.votes import (Ask, Poison, Reply, parse_ask, parse_poison, parse_reply,
                              poison_applies, serialize_ask, serialize_poison,
                              serialize_reply)

names = st.lists(st.text(st.characters(codec="utf-8"), min_size=1, max_size=20), max_size=5,
                 unique=True).map(tuple)
u64 = st.integers(0, 2**64 - 1)


@given(st.binary(max_size=300))
def test_parsers_never_raise(data: bytes) -> None:
    parse_ask(data)
    parse_reply(data)
    parse_poison(data)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(
                        st.sampled_from(["h", "a", "g", "o", "s", "t", "b"]), c, max_size=4),
                    max_leaves=10))
def test_parsers_never_raise_on_json_shaped_junk(doc: object) -> None:
    import json
    data = json.dumps(doc).encode()
    parse_ask(data)
    parse_reply(data)
    parse_poison(data)


@given(names, st.data())
def test_ask_round_trip(hold: tuple[str, ...], data: st.DataObject) -> None:
    leased = tuple(x for x in hold if data.draw(st.booleans()))
    assert parse_ask(serialize_ask(Ask(hold, leased))) == Ask(hold, leased)
    if hold:  # a lease held on a group not asked for is nonsense
        assert parse_ask(serialize_ask(Ask(hold[1:], hold[:1]))) is None


@given(u64, u64, names, st.lists(st.tuples(st.sampled_from(["g1", "g2", "n1"]),
                                           st.sampled_from(["n1", "n2"])), max_size=2),
       st.booleans(), st.integers(1, 2**32 - 1))
def test_reply_round_trip(gen: int, seq: int, granted: tuple[str, ...],
                          holders: list[tuple[str, str]], starting: bool, lease: int) -> None:
    r = Reply(gen, seq, granted, tuple(holders), starting, lease)
    assert parse_reply(serialize_reply(r)) == r


def test_a_group_named_like_its_holder_is_fine() -> None:
    r = Reply(1, 2, ("web",), (("web", "web"),), False, 600)  # group "web" on node "web"
    assert parse_reply(serialize_reply(r)) == r


@given(st.text(min_size=1, max_size=20), st.none() | u64, u64)
def test_poison_round_trip(target: str, gen: int | None, before: int) -> None:
    p = Poison(target, gen, before)
    assert parse_poison(serialize_poison(p)) == p


def test_a_pill_stops_only_the_life_it_names() -> None:
    assert poison_applies(Poison("n1", 7, 0), "n1", 7)
    assert not poison_applies(Poison("n1", 7, 10**15), "n1", 8)  # a later life
    assert not poison_applies(Poison("n2", 7, 0), "n1", 7)  # another node
    # written for "whoever runs there now" (the writer never heard the peer's generation)
    assert poison_applies(Poison("n1", None, 1000), "n1", 999)
    assert not poison_applies(Poison("n1", None, 1000), "n1", 1000)


def test_the_node_obeys_a_pill_from_its_peer_for_this_life_only() -> None:
    sim = Sim(1)
    sim.run(5.0)
    n1, n2 = sim.nodes["n1"], sim.nodes["n2"]
    pill = n2.side.poison_frame(now_ms=2**40)
    assert n1.poisoned is None
    forged = bytearray(pill)
    forged[-1] ^= 1
    n1.side.mail(bytes(forged))
    assert n1.poisoned is None and n1.frames.rejected["bad_auth"] == 1
    n1.side.mail(n1.side.poison_frame(now_ms=2**40))  # from itself: not its peer
    assert n1.poisoned is None
    n1.frames.generation += 1  # as if n1 restarted after n2 wrote it: a new process, one life
    n1.frames.lives = [n1.generation]
    notes = n1.side.mail(pill)
    assert n1.poisoned is None and "ignoring a poison pill" in notes[0].text
    n1.frames.generation -= 1
    n1.frames.lives = [n1.generation]
    notes = n1.side.mail(pill)
    assert n1.poisoned == "n2" and "POISONED by n2" in notes[0].text


def test_a_witness_reply_answers_one_open_ask_only() -> None:
    import ipaddress

    from tests.unit.sim import make_cluster
    from vigil.model import Witness
    sim = Sim(2, make_cluster(witness=Witness(ipaddress.ip_address("10.0.0.9"))))
    n1 = sim.nodes["n1"]
    ask = wire.decode(n1.side.witness_ask(sim.now), KEY)
    assert isinstance(ask, wire.Frame)

    def reply(seq: int, gen: int = n1.generation) -> bytes:
        return wire.encode(wire.Frame(wire.FrameKind.WITNESS_REPLY, "sim", "witness", 1, seq,
                                      0, serialize_reply(Reply(gen, seq, ("g1",), (), False, 2000))), KEY)

    n1.side.witness_reply(reply(ask.seq + 100), sim.now)  # no such ask
    n1.side.witness_reply(reply(ask.seq, gen=n1.generation + 1), sim.now)  # another life's
    assert "g1" not in n1.witness.leases and n1.frames.rejected["replay"] == 2
    n1.side.witness_reply(reply(ask.seq), sim.now)
    assert n1.witness.leases["g1"] > sim.now
    before = n1.witness.leases["g1"]
    n1.side.witness_reply(reply(ask.seq), sim.now + 0.1)  # the same reply again
    assert n1.witness.leases["g1"] == before and n1.frames.rejected["replay"] == 3
