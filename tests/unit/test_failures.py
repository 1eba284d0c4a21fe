"""Monitor failures (node.resource_failed): restart in place, then move the group off the
node after migration_threshold failures within failure_timeout, and let an operator or the
timeout bring it back. Driven through the two-node simulation."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings, strategies as st

from tests.unit.sim import Sim, make_cluster
from vigil.model import GroupPolicy


def sim_with(threshold: int = 3, failure_timeout: float = 600.0, seed: int = 1) -> Sim:
    c = make_cluster()
    groups = tuple(dataclasses.replace(g, policy=GroupPolicy(threshold, failure_timeout))
                   for g in c.groups)
    sim = Sim(seed, dataclasses.replace(c, groups=groups))
    sim.run(5.0)
    assert sim.runners("g1") == ["n1"]
    return sim


def test_a_failed_resource_is_restarted_in_place_below_the_threshold():
    sim = sim_with(threshold=3)
    sim.fail("n1", "g1")
    sim.run(1.0)
    sim.fail("n1", "g1")
    sim.run(1.0)
    assert sim.runners("g1") == ["n1"] and sim.recovers["g1"] == 2
    assert sim.nodes["n1"].fail_count("g1", sim.now) == 2
    assert any("restarting it in place (failure 2 of 3" in line for line in sim.log)
    assert any("group g1 recovered" in line for line in sim.log)
    assert not sim.violations


def test_the_threshold_moves_the_group_and_keeps_the_node_off_until_cleanup():
    sim = sim_with(threshold=2, failure_timeout=0)
    sim.fail("n1", "g1")
    sim.run(1.0)
    sim.fail("n1", "g1")
    sim.run(2.0)
    assert sim.runners("g1") == ["n2"]
    assert any("reach migration_threshold 2" in line for line in sim.log)
    sim.run(30.0)  # failure_timeout 0: for good, even with auto_failback
    assert sim.runners("g1") == ["n2"]
    sim.nodes["n1"].cleanup("g1")
    sim.run(2.0)
    assert sim.runners("g1") == ["n1"]  # home again (auto_failback), as a planned hand-over
    assert not sim.violations


def test_failure_timeout_forgets_failures_and_lifts_the_ban():
    sim = sim_with(threshold=1, failure_timeout=10.0)
    sim.fail("n1", "g1")
    sim.run(2.0)
    assert sim.runners("g1") == ["n2"]
    sim.run(9.0)
    assert sim.runners("g1") == ["n1"]
    assert sim.nodes["n1"].fail_count("g1", sim.now) == 0
    assert any("failure_timeout passed" in line for line in sim.log)


def test_a_hard_failure_moves_the_group_at_once():
    sim = sim_with(threshold=5)
    sim.fail("n1", "g1", kind="hard")
    sim.run(2.0)
    assert sim.runners("g1") == ["n2"] and "g1" not in sim.recovers


def test_with_no_peer_able_the_group_stops_rather_than_flaps():
    sim = sim_with(threshold=1, failure_timeout=0)
    sim.crash("n2")
    sim.run(5.0)
    sim.fail("n1", "g2")  # n1 took g2 over from the dead n2
    sim.fail("n1", "g1")
    sim.run(2.0)
    assert sim.runners("g1") == [] and sim.runners("g2") == []


def test_news_of_a_group_no_longer_running_changes_nothing():
    sim = sim_with()
    sim.request("n1", "standby")
    sim.run(2.0)
    assert sim.runners("g1") == ["n2"]
    before = dict(sim.nodes["n1"].fails.failures)
    assert sim.nodes["n1"].resource_failed("g1", 0, "soft", "late", sim.now) == []
    assert sim.nodes["n1"].fails.failures == before


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32),
       events=st.lists(st.tuples(st.sampled_from(["fail_n1", "fail_n2", "hard_n1", "standby",
                                                  "takeover", "cleanup"]),
                                 st.sampled_from(["g1", "g2"]), st.floats(0.0, 3.0)),
                       max_size=15),
       loss=st.sampled_from([0.0, 0.1]))
def test_failures_never_put_a_group_on_both_nodes(seed, events, loss):
    sim = Sim(seed, make_cluster(), loss=loss)
    sim.run(5.0)
    for what, group, wait in events:
        if what.startswith("fail") or what.startswith("hard"):
            sim.fail(what[-2:], group, kind="hard" if what.startswith("hard") else "soft")
        elif what == "cleanup":
            for node in sim.nodes.values():
                node.cleanup(group)
        else:
            sim.request("n1", what)
        sim.run(wait)
        assert not sim.violations, (sim.violations, sim.log[-30:])
