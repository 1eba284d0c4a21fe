"""Failover (core/failover.py) alone: what the peer's death and return do to the gates of a
takeover, one gate at a time, and random walks of deaths, returns, fencing and probes."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given, strategies as st

from tests.unit.sim import make_cluster
from vigil.core.agenda import Agenda
from vigil.core.eligibility import Eligibility
from vigil.core.failover import Failover
from vigil.core.fencing import FenceState, PeerFencing
from vigil.core.lookout import Answer, Lookout
from vigil.core.membership import Membership, NodeDead, NodeUp
from vigil.core.peer import Peer
from vigil.core.witness import WitnessClient
from vigil.model import Cluster, Fencing, Timings, Witness
from vigil.wire.messages import GroupState
from vigil.wire.votes import Reply

T = Timings(0.2, 0.5, 1.0, 3.0)
SETTLE = 1.5
FREE = ()
HELD = (Answer("10.0.9.1", "02:00:00:00:00:01"),)


def failover(cluster: Cluster, m: Membership | None = None) -> tuple[Failover, Agenda]:
    m = m or Membership(["n2"], ("eth0",), T, 100.0)
    peer = Peer("n2", m, T.deadtime)
    agenda = Agenda(T.keepalive)
    w = WitnessClient(2.0) if cluster.witness is not None else None
    local = {g.name: GroupState.STOPPED for g in cluster.groups}
    e = Eligibility(local, local, peer, w, agenda)
    f = Failover("n1", peer, PeerFencing(cluster.fencing), w, Lookout(T.keepalive), e, agenda,
                 SETTLE)
    return f, agenda


def fenced(addresses: bool = False) -> Cluster:
    return dataclasses.replace(make_cluster(addresses=addresses),
                               fencing=Fencing(agent="manual"))


def test_a_death_without_goodbye_waits_for_fencing_then_for_the_addresses() -> None:
    c = dataclasses.replace(fenced(addresses=True), address_probe=1)
    f, agenda = failover(c)
    notes = f.on_events([NodeDead("n2", "deadtime")], c, ["g1", "g2"], 101.0, 101.0)
    assert [n.text for n in notes] == [
        "node n2: is dead (deadtime)",
        "n2 must be fenced before its groups are taken over: waiting for `vigil fence "
        "confirm n2`"]
    assert f.blocked(c, 101.0, 101.0) == {"g1": "n2 is dead but not fenced yet",
                                          "g2": "n2 is dead but not fenced yet"}
    assert f.start_blocked(c, 101.0) == {}, "no witness: nothing to settle"
    assert f.fence_confirm("n2") is None and agenda.send
    assert f.blocked(c, 101.0, 101.0) == {}, "fenced off: its host answers for nothing"
    assert f.looks_due(["g1"], 101.0) == {}


def test_without_fencing_a_silent_peers_addresses_must_be_heard_free() -> None:
    c = dataclasses.replace(make_cluster(addresses=True), address_probe=1)
    f, _ = failover(c)
    f.on_events([NodeDead("n2", "deadtime")], c, ["g1", "g2"], 101.0, 101.0)
    assert "checking that its addresses are free" in f.blocked(c, 101.0, 101.0)["g1"]
    assert set(f.looks_due(["g1", "g2"], 101.0)) == {"g1", "g2"}
    f.lookout.started("g1")  # never reported running: it must be heard free twice
    assert f.probed_addresses("g1", FREE, 101.05) == []
    assert "checking" in f.blocked(c, 101.05, 101.05)["g1"]
    f.lookout.started("g1")
    notes = f.probed_addresses("g1", HELD, 101.1)
    assert "n2's host is alive and holds them" in notes[0].text
    assert "still answered" in f.blocked(c, 101.1, 101.1)["g1"]
    f.lookout.started("g1")
    notes = f.probed_addresses("g1", FREE, 101.3)
    assert notes[0].text == "group g1: its addresses answer no more: taking it over"
    assert "g1" not in f.blocked(c, 101.4, 101.4)


def test_with_a_witness_the_lease_gates_the_takeover_and_the_start_settles() -> None:
    c = make_cluster(witness=Witness(ipaddress.ip_address("10.0.0.9")))
    m = Membership(["n2"], ("eth0",), T, 98.0)
    f, _ = failover(c, m)
    assert f.wanted(c, ["g1"], True) == ("g1",), "the peer is not dead: only what runs here"
    f.on_events(m.on_tick(98.0 + T.initdead), c, ["g1", "g2"], 101.0, 101.0)
    assert f.peer.dead() and f.peer.dead_at == 101.0
    assert f.blocked(c, 101.0, 101.0)["g2"] == "n2 is dead but the witness does not answer"
    assert f.witness is not None
    f.witness.ask(1, ("g2",), 101.0)
    f.witness.reply(Reply(1, 1, ("g2",), (("g2", "n1"),), lease_ms=2000), {"g2"}, "n1",
                    "n2", True, "witness", 101.0)
    assert "g2" not in f.blocked(c, 101.1, 101.1)
    assert f.start_blocked(c, 101.1)["g2"].endswith("giving it one deadtime to stop")
    assert f.start_blocked(c, 101.0 + SETTLE) == {}
    assert 101.0 + SETTLE in f.deadlines(101.1)
    assert f.wanted(c, [], True) == ("g1", "g2"), "a dead peer's groups: ask for them too"


def test_after_a_goodbye_nothing_is_fenced_looked_at_or_settled() -> None:
    c = dataclasses.replace(fenced(addresses=True), address_probe=1,
                            witness=Witness(ipaddress.ip_address("10.0.0.9")))
    f, _ = failover(c)
    notes = f.on_events([NodeDead("n2", "shutdown")], c, ["g1"], 101.0, 101.0)
    assert f.lookout.blocks("g1") is None
    assert [n.text for n in notes] == ["node n2: is dead (shutdown)"]
    assert f.fencing.state is None and f.start_blocked(c, 101.0) == {}
    assert all("witness" in why for why in f.blocked(c, 101.0, 101.0).values())


def test_a_failed_stop_there_is_fenced_or_said_loudly() -> None:
    c = fenced()
    f, agenda = failover(c)
    agenda.take_send(0.0)
    news = f._failed_stop("g1")
    assert news[0].text == "n2 failed to stop group g1: fencing it, then taking the group over"
    assert f.fencing.state is FenceState.MANUAL and agenda.take_send(0.0)
    assert f._failed_stop("g2") == [], "already asked for"
    bare, _ = failover(make_cluster())
    assert "stays blocked (no fencing configured)" in bare._failed_stop("g1")[0].text


@given(st.lists(st.one_of(
    st.sampled_from([("dead", "deadtime"), ("dead", "initdead"), ("dead", "shutdown"),
                     ("up", ""), ("confirm", ""), ("run", "")]),
    st.tuples(st.just("result"), st.sampled_from(["ok", "failed"])),
    st.tuples(st.just("probe"), st.sampled_from(["g1", "g2"]), st.booleans())), max_size=25))
def test_the_gates_open_exactly_when_their_reasons_are_gone(steps: list[tuple[str, ...]]) -> None:
    c = dataclasses.replace(fenced(addresses=True), address_probe=1)
    c = dataclasses.replace(c, fencing=Fencing(agent="external", command=("/bin/true",)))
    f, _ = failover(c)
    now = 101.0
    for step in steps:
        now += 0.1
        if step[0] == "dead":
            f.on_events([NodeDead("n2", step[1])], c, ["g1", "g2"], now, now)
        elif step[0] == "up":
            f.on_events([NodeUp("n2", 1, False)], c, ["g1", "g2"], now, now)
        elif step[0] == "confirm":
            f.fence_confirm("n2")
        elif step[0] == "run":
            f.fencing.run(False, False)
        elif step[0] == "result":
            f.fence_result(step[1] == "ok", "", now)
        elif f.lookout.due(step[1], now):
            f.lookout.started(step[1])
            f.probed_addresses(step[1], FREE if step[2] else HELD, now)
        blocked = f.blocked(c, now, now)
        fencing = f.fencing.state not in (None, FenceState.DONE)
        for g in ("g1", "g2"):
            if fencing:
                assert blocked[g] == "n2 is dead but not fenced yet"
            elif g in blocked:
                assert not f.fencing.done and f.lookout.blocks(g) is not None
        if step[0] == "up":
            assert blocked == {} and f.fencing.state is None and f.peer.dead_at is None
        if step == ("dead", "shutdown"):
            # A goodbye clears the lookout; fencing asked for by an earlier death stays.
            assert set(blocked.values()) <= {"n2 is dead but not fenced yet"}
