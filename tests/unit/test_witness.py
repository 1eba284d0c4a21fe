"""The witness: at most one node runs each group whatever the network does (arbiter.py and
the lease rules in node.py), driven through the two-node simulation (sim.py).

The check here is strict: a group is never active on both nodes at any moment, partitions
included (with no witness, a partition may leave a double owner until it heals).
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings, strategies as st

from tests.unit.sim import KEY, Sim, make_cluster
from vigil.arbiter import Arbiter
from vigil.model import Timings, Witness
from vigil.wire import frame as wire
from vigil.wire.messages import ACTIVE_STATES
from vigil.wire.votes import Ask, parse_reply, serialize_ask

SETTINGS = settings(max_examples=int(__import__("os").environ.get("VIGIL_EXAMPLES", "60")), deadline=None)
T = Timings(0.2, 0.5, 1.0, 3.0)
W = Witness(ipaddress.ip_address("10.0.0.9"))
LEASE = 2 * T.deadtime


def make_sim(seed: int, **kw: object) -> Sim:
    sim = Sim(seed, make_cluster(timings=T, witness=W), **kw)  # type: ignore[arg-type]
    sim.run(T.initdead + LEASE + 2.0)  # up, each group on its home, leases held
    return sim


def cut_nodes(sim: Sim, one_way: str | None = None) -> None:
    """Cut every link between the nodes, or only those into `one_way`."""
    for dst in ("n1", "n2"):
        if one_way in (None, dst):
            sim.cut |= {(dst, 0), (dst, 1)}


def runners(sim: Sim, group: str) -> list[str]:
    return [n for n, node in sim.nodes.items() if node.local[group] in ACTIVE_STATES]


def test_both_reach_the_witness_so_each_keeps_its_own():
    sim = make_sim(1)
    assert runners(sim, "g1") == ["n1"] and runners(sim, "g2") == ["n2"]
    cut_nodes(sim)
    sim.run(10.0)
    assert not sim.violations, sim.violations
    assert runners(sim, "g1") == ["n1"] and runners(sim, "g2") == ["n2"]
    assert any("holds the witness's lease" in w for w in sim.nodes["n2"].waiting.values())


def test_an_isolated_node_stops_and_the_other_takes_over():
    sim = make_sim(2)
    cut_nodes(sim)
    sim.witness_cut.add("n1")
    t0 = sim.now
    sim.run(10.0)
    assert not sim.violations, sim.violations
    assert runners(sim, "g1") == ["n2"] and runners(sim, "g2") == ["n2"]
    took = [t for t, node, g in sim.start_log if node == "n2" and g == "g1" and t > t0]
    # deadtime to see n1 dead, then n1's lease at the witness runs out (one lease after its
    # last ask) and the takeover settles for one deadtime: well within deadtime + lease + 2 s
    assert took and took[0] - t0 <= T.deadtime + LEASE + T.deadtime + 0.5, took
    assert any("holds no lease" in line for line in sim.log)


def test_nobody_runs_anything_when_both_lose_peer_and_witness():
    sim = make_sim(3)
    cut_nodes(sim)
    sim.witness_cut |= {"n1", "n2"}
    sim.run(10.0)
    assert not sim.violations, sim.violations
    assert runners(sim, "g1") == [] and runners(sim, "g2") == []


def test_a_dead_owner_is_replaced_after_its_lease():
    sim = make_sim(4)
    t0 = sim.now
    sim.crash("n1")  # what it ran is gone with it (the guard or the power)
    sim.run(10.0)
    assert runners(sim, "g1") == ["n2"]
    took = [t for t, node, g in sim.start_log if node == "n2" and g == "g1" and t > t0]
    assert took and T.deadtime <= took[0] - t0 <= T.deadtime + LEASE + T.deadtime + 0.5, took


def test_witness_down_changes_nothing_while_the_nodes_talk():
    sim = make_sim(5)
    sim.witness_cut |= {"n1", "n2"}
    sim.run(10.0)
    assert runners(sim, "g1") == ["n1"] and runners(sim, "g2") == ["n2"]
    sim.request("n1", "standby")  # planned hand-overs need no witness
    sim.run(2.0)
    assert runners(sim, "g1") == ["n2"]


@SETTINGS
@given(seed=st.integers(0, 2**32),
       faults=st.lists(st.tuples(
           st.sampled_from(["cut", "cut_one_way_n1", "cut_one_way_n2", "heal",
                            "witness_n1", "witness_n2", "witness_back", "restart_witness",
                            "standby_n1", "standby_n2", "replay", "restart_n1",
                            "restart_n2"]),
           st.floats(0.05, 4.0)), max_size=12),
       loss=st.sampled_from([0.0, 0.05, 0.2]))
def test_never_active_on_both_whatever_fails(seed, faults, loss):
    sim = make_sim(seed, loss=loss)
    for fault, wait in faults:
        if fault == "cut":
            cut_nodes(sim)
        elif fault.startswith("cut_one_way_"):
            cut_nodes(sim, one_way=fault[-2:])
        elif fault == "heal":
            sim.cut.clear()
        elif fault.startswith("witness_n"):
            sim.witness_cut.add(fault[-2:])
        elif fault == "witness_back":
            sim.witness_cut.clear()
        elif fault == "restart_witness":
            sim.restart_witness()
        elif fault == "replay":
            sim.replay(30)  # the attacker (issue 12): any frame it saw, to either node
        elif fault.startswith("restart_"):
            if fault[-2:] in sim.nodes:  # a new daemon at once, finding what the old one ran
                sim.boot(fault[-2:], sim.crash(fault[-2:]))
        else:
            sim.request(fault[-2:], "standby")
        sim.run(wait)
        assert not sim.violations, (sim.violations, sim.log[-40:])
    # Liveness: once everything heals, each group runs on exactly one node again.
    sim.cut.clear()
    sim.witness_cut.clear()
    sim.run(T.deadtime + LEASE + T.initdead + 3.0)
    assert not sim.violations, sim.violations
    for g in ("g1", "g2"):
        assert len(runners(sim, g)) == 1, (g, sim.log[-40:])


def _ask(arb: Arbiter, node: str, hold: tuple[str, ...], seq: int, now: float,
         gen: int = 1) -> tuple[str, ...] | None:
    data = wire.encode(wire.Frame(wire.FrameKind.WITNESS_ASK, "sim", node, gen, seq, 0,
                                  serialize_ask(Ask(hold))), KEY)
    out, _ = arb.receive(data, now)
    if out is None:
        return None
    f = wire.decode(out, KEY)
    assert isinstance(f, wire.Frame)
    r = parse_reply(f.payload)
    assert r is not None and (r.generation, r.seq) == (gen, seq)
    return r.granted


def test_arbiter_grants_each_group_to_one_node_until_released_or_expired():
    arb = Arbiter("sim", ("n1", "n2"), ("g1",), KEY, "witness", 2.0, 1, 0.0)
    assert _ask(arb, "n1", ("g1",), 1, 1.0) == ()  # just started: nothing for one lease
    assert _ask(arb, "n1", ("g1",), 2, 2.0) == ("g1",)
    assert _ask(arb, "n2", ("g1",), 1, 2.5) == ()  # n1 holds it
    assert _ask(arb, "n1", ("g1",), 3, 3.0) == ("g1",)  # renewed until 5.0
    assert _ask(arb, "n2", ("g1",), 2, 4.9) == ()
    assert _ask(arb, "n2", ("g1",), 3, 5.0) == ("g1",)  # expired: n2's now
    assert _ask(arb, "n1", ("g1",), 4, 5.1) == ()
    assert _ask(arb, "n2", (), 4, 5.2) == ()  # n2 lets go ...
    assert _ask(arb, "n1", ("g1",), 5, 5.3) == ("g1",)  # ... and n1 may have it at once


def test_arbiter_drops_what_it_must_not_answer():
    arb = Arbiter("sim", ("n1", "n2"), ("g1",), KEY, "witness", 2.0, 1, 0.0)
    assert _ask(arb, "n1", ("g1",), 7, 3.0) == ("g1",)
    assert _ask(arb, "n1", ("g1",), 7, 3.1) is None  # a replay
    assert _ask(arb, "n3", ("g1",), 1, 3.1) is None  # not a node of this cluster
    assert _ask(arb, "n2", ("nope",), 1, 3.1) is None  # no such group
    assert arb.receive(b"garbage", 3.2) == (None, arb.receive(b"garbage", 3.2)[1])
    assert arb.rejected == 5
    assert arb.leases["g1"].holder == "n1"


def test_a_node_whose_own_cables_are_out_needs_the_lease_too():
    """Review finding: with every heartbeat cable of n1 pulled, n1's silence about n2 is no
    evidence (n2 is never declared dead there), while n2 declares n1 dead and asks the
    witness. n1 must stop what it runs unless it holds the lease."""
    sim = make_sim(6)
    n1 = sim.nodes["n1"]
    for link in (0, 1):
        n1.set_link_local(link, False, sim.now)
    cut_nodes(sim)
    sim.witness_cut.add("n1")  # and its path to the witness went with the cables
    sim.run(10.0)
    assert not sim.violations, sim.violations
    assert runners(sim, "g1") == ["n2"]
    assert n1.membership.view("n2").liveness.value == "up", "never declared dead on n1"
    assert any("is not heard on any link" in line for line in sim.log)


def test_a_witness_restart_does_not_take_down_a_node_running_alone():
    sim = make_sim(7)
    sim.crash("n2")
    sim.run(10.0)
    assert runners(sim, "g1") == ["n1"] and runners(sim, "g2") == ["n1"]
    starts = len(sim.start_log)
    sim.restart_witness()  # it knows nothing of the leases n1 holds
    sim.run(10.0)
    assert runners(sim, "g1") == ["n1"] and runners(sim, "g2") == ["n1"]
    assert len(sim.start_log) == starts, "nothing was stopped and started again"


def test_a_restarted_daemon_gets_its_lease_back_and_stops_nothing():
    """A new daemon finds g1 running and asks for it at once; the witness's lease names
    this node, so it is granted back: nothing stops, links up or cut."""
    sim = make_sim(9)
    sim.boot("n1", sim.crash("n1"))
    sim.run(T.initdead + 2.0)
    cut_nodes(sim)
    sim.boot("n1", sim.crash("n1"))
    sim.run(T.initdead + LEASE + 2.0)
    assert not sim.violations, sim.violations
    assert runners(sim, "g1") == ["n1"] and runners(sim, "g2") == ["n2"]
    assert sim.stops == {}, (sim.stops, sim.log[-20:])
    assert not any("holds no lease" in line for line in sim.log)


def test_a_restarted_daemon_the_witness_will_not_grant_stops_within_initdead():
    """The witness has just restarted (it grants only what a node says it holds) when the
    links are cut and n1's daemon restarts with g1 running: n1 cannot get the lease back
    and n2, which counts n1 dead, will get it. n1 stops g1 before its initdead is over,
    and before n2 starts it."""
    sim = make_sim(10)
    sim.restart_witness()
    cut_nodes(sim)
    sim.boot("n1", sim.crash("n1"))
    t0 = sim.now
    sim.run(T.initdead + LEASE + 2.0)
    assert not sim.violations, sim.violations
    assert runners(sim, "g1") == ["n2"] and sim.stops.get("g1") == 1
    stopped = [float(line.split()[0]) for line in sim.log
               if "n1: releasing group g1: cannot hold it" in line]
    assert stopped and stopped[0] - t0 < T.deadtime, (stopped, t0)
    assert any("holds no lease of the witness on group g1: stopping it" in line
               for line in sim.log)


def test_a_witness_with_another_lease_length_is_obeyed():
    """A node holds half of the shorter of its own and the witness's lease."""
    sim = make_sim(8)
    assert sim.witness is not None
    sim.witness.lease = LEASE / 4  # the witness host's configuration says otherwise
    sim.run(1.0)
    n1 = sim.nodes["n1"]
    left = max(n1.witness.leases.values()) - sim.now
    assert 0 < left <= LEASE / 8 + 0.01, left
    cut_nodes(sim)
    sim.witness_cut.add("n1")
    sim.run(10.0)
    assert not sim.violations and runners(sim, "g1") == ["n2"]


def test_a_clean_leave_needs_no_lease_from_the_witness():
    """A peer that said goodbye with the group stopped runs nothing: its group is started
    at once, not when its lease at the witness runs out."""
    sim = make_sim(9)
    n1 = sim.nodes["n1"]
    n1.leave()
    sim._step("n1")
    sim.witness_cut.add("n1")  # its last ask never arrives: the witness still has its lease
    t0 = sim.now
    sim.run(3.0)
    took = [t for t, node, g in sim.start_log if node == "n2" and g == "g1" and t > t0]
    assert took and took[0] - t0 < 0.2, took
    assert not sim.violations


def test_a_clean_leave_takeover_is_not_stopped_while_its_lease_comes():
    """After a goodbye the survivor starts at once and keeps the group while the witness,
    which hears the goodbye a moment later, grants it the lease: no stop in between (the
    torture test once saw start, stop for want of a lease, start)."""
    sim = make_sim(9)
    n1 = sim.nodes["n1"]
    n1.leave()
    sim._step("n1")
    t0 = sim.now
    sim.run(3.0)
    starts = [t for t, node, g in sim.start_log if node == "n2" and g == "g1" and t > t0]
    assert len(starts) == 1 and starts[0] - t0 < 0.2, starts
    assert not any("holds no lease" in line for line in sim.log), sim.log[-20:]
    assert not sim.violations
