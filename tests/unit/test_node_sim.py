"""Two real `Node` cores on a fake network: safety and convergence over random interleavings."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.unit.sim import Sim, make_cluster
from vigil.wire.messages import GroupState

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

op = st.one_of(
    # Short steps land requests inside the few milliseconds a hand-over is in flight.
    st.tuples(st.just("run"), st.one_of(st.floats(0.0, 0.6),
                                        st.sampled_from([0.001, 0.002, 0.005, 0.01, 0.02]))),
    st.tuples(st.just("until_starting")),  # stop the clock the moment a start begins
    st.tuples(st.sampled_from(["standby", "takeover"]), st.sampled_from(["n1", "n2"])),
    st.tuples(st.just("move"), st.sampled_from(["n1", "n2"]), st.sampled_from(["g1", "g2"]),
              st.sampled_from(["n1", "n2", ""])),
    st.tuples(st.just("eligible"), st.sampled_from(["n1", "n2"]), st.sampled_from(["g1", "g2"]),
              st.booleans()),
    st.tuples(st.just("replay"), st.integers(1, 40)),  # the attacker (issue 12): any frame seen
)


def run_until_a_start(sim: Sim, limit: float = 1.0) -> None:
    end = sim.now + limit
    while sim.now < end and not any(s is GroupState.STARTING for n in sim.nodes.values()
                                     for s in n.local.values()):
        sim.run(0.0005)


def settle(sim: Sim, seconds: float = 4.0) -> None:
    sim.loss, sim.dup = 0.0, 0.0
    sim.cut.clear()
    for n in ("n1", "n2"):
        for g in ("g1", "g2"):
            sim.set_eligible(n, g, True)
    sim.run(seconds)


def one_runner_each(sim: Sim) -> None:
    for g in ("g1", "g2"):
        assert len(sim.runners(g)) == 1, (g, sim.runners(g), sim.log[-30:])


@SETTINGS
@given(seed=st.integers(0, 2**32), ops=st.lists(op, max_size=40),
       loss=st.floats(0, 0.3), delay=st.floats(0.0005, 0.08), dup=st.floats(0, 0.3))
def test_never_active_on_both_while_connected(seed, ops, loss, delay, dup):
    sim = Sim(seed, loss=loss, max_delay=delay, dup=dup)
    sim.run(0.5)
    for o in ops:
        if o[0] == "run":
            sim.run(o[1])
        elif o[0] == "until_starting":
            run_until_a_start(sim)
        elif o[0] == "eligible":
            sim.set_eligible(o[1], o[2], o[3])
        elif o[0] == "replay":
            sim.replay(o[1])
        elif o[0] == "move":
            sim.request(o[1], "move", group=o[2], to=o[3])
        else:
            sim.request(o[1], o[0])
        assert not sim.violations, (sim.violations, sim.log[-40:])
    settle(sim)
    assert not sim.violations, (sim.violations, sim.log[-40:])
    one_runner_each(sim)


@SETTINGS
@given(seed=st.integers(0, 2**32))
def test_started_together_each_group_on_its_home(seed):
    sim = Sim(seed, max_delay=0.02)
    sim.run(1.0)  # well inside initdead: the peer is heard, no need to wait for it
    assert sim.runners("g1") == ["n1"] and sim.runners("g2") == ["n2"], sim.log
    assert sim.starts == {"g1": 1, "g2": 1}


@SETTINGS
@given(seed=st.integers(0, 2**32), cut_for=st.floats(1.5, 6.0), failback=st.booleans(),
       one_way=st.booleans())
def test_partition_heals_to_one_runner(seed, cut_for, failback, one_way):
    sim = Sim(seed, make_cluster(auto_failback=failback))
    sim.run(1.0)
    sim.cut = {("n2", 0), ("n2", 1)} if one_way else {("n1", 0), ("n1", 1), ("n2", 0),
                                                       ("n2", 1)}
    sim.run(cut_for)
    sim.cut.clear()
    sim.run(2.0)
    assert not sim.violations
    one_runner_each(sim)
    if failback:
        assert sim.runners("g1") == ["n1"] and sim.runners("g2") == ["n2"]


@SETTINGS
@given(seed=st.integers(0, 2**32), down_for=st.floats(0.0, 5.0), failback=st.booleans())
def test_crash_and_restart_converges(seed, down_for, failback):
    sim = Sim(seed, make_cluster(auto_failback=failback))
    sim.run(1.0)
    found = sim.crash("n1")  # like kill -9: g1 stays running on n1's side
    sim.run(down_for)
    if down_for > 1.3:
        assert sim.runners("g1") == ["n2"], "the survivor takes the dead node's group"
    sim.boot("n1", found)  # the restart finds g1 still there and must reconcile, not restart
    sim.run(4.0)
    assert not sim.violations
    one_runner_each(sim)
    if failback:
        assert sim.runners("g1") == ["n1"]


@SETTINGS
@given(seed=st.integers(0, 2**32))
def test_failover_after_deadtime_not_before(seed):
    sim = Sim(seed)
    sim.run(1.0)
    t0 = sim.now
    sim.crash("n1")
    sim.run(0.75)  # deadtime is 1 s; the last heartbeat is at most keepalive (0.2 s) old
    assert sim.runners("g1") == [], "no takeover before deadtime"
    while sim.runners("g1") != ["n2"]:
        sim.run(0.001)
        assert sim.now - t0 < 1.0 + 0.03, "takeover within deadtime plus action time"


@SETTINGS
@given(seed=st.integers(0, 2**32), who=st.sampled_from(["standby", "takeover"]))
def test_planned_handover_does_not_wait_for_deadtime(seed, who):
    sim = Sim(seed, max_delay=0.001, action_time=0.002)
    sim.run(1.0)
    sim.request("n1" if who == "standby" else "n2", who)
    sim.run(0.02)  # a few network hops and two actions, never a timer
    assert sim.runners("g1") == ["n2"], sim.log[-10:]
    assert sim.runners("g2") == ["n2"]


def test_failed_stop_blocks_the_group_everywhere():
    sim = Sim(7, fail_stop=1.0)
    sim.run(1.0)
    sim.request("n1", "standby")
    sim.run(2.0)
    assert sim.nodes["n1"].local["g1"] is GroupState.FAILED
    assert sim.runners("g1") == [], "never started elsewhere while its stop failed"


def test_failed_start_moves_the_group_to_the_peer():
    sim = Sim(3)
    sim.fail_start = 1.0
    sim.run(0.5)
    sim.fail_start = 0.0
    sim.run(1.0)
    # Both nodes failed their first start; n1 failed g1 first and n2 took it, or vice versa:
    # either way each group ends up running once or blocked by failures on both, never twice.
    for g in ("g1", "g2"):
        assert len(sim.runners(g)) <= 1


def test_leaving_hands_groups_over_and_says_goodbye():
    sim = Sim(5, max_delay=0.001, action_time=0.002)
    sim.run(1.0)
    node = sim.nodes["n1"]
    node.leave()
    sim._step("n1")
    sim.run(0.05)
    assert node.quiescent()
    assert sim.runners("g1") == ["n2"]
    sim.send_all("n1")  # the daemon's last frames: status LEAVING
    sim.run(0.01)
    assert sim.nodes["n2"].membership.view("n1").liveness.value == "dead"


def test_no_start_on_a_stale_stopped_report():
    """The acknowledgement rule: n2 begins starting g1 while its STARTING report is still in
    flight; a takeover on n1 at that instant must wait for n2's answer, not trust n2's older
    STOPPED report (found by the simulation when the rule was switched off)."""
    sim = Sim(1, max_delay=0.05, action_time=0.005)
    sim.run(1.0)
    sim.request("n1", "standby")
    while sim.nodes["n2"].local["g1"] is not GroupState.STARTING:
        sim.run(0.0005)
    assert sim.nodes["n1"].report.group("g1").state is GroupState.STOPPED
    sim.request("n1", "takeover")
    sim.run(2.0)
    assert not sim.violations, sim.violations
    assert sim.runners("g1") == ["n1"]


def test_a_second_host_under_our_name_is_reported_not_obeyed():
    from tests.unit.sim import KEY, LINKS
    from vigil.core.node import Node
    from vigil.core.notes import Level

    sim = Sim(11)
    sim.run(1.0)
    n1 = sim.nodes["n1"]
    impostor = Node(sim.cluster, "n1", KEY, n1.generation + 5, LINKS, sim.now)
    impostor.probed({"g1": GroupState.STOPPED, "g2": GroupState.STOPPED})
    notes = n1.receive(impostor.frame(0, sim.now), 0, sim.now)
    assert n1.frames.rejected["duplicate_node"] == 1
    assert any(n.level is Level.ERROR and "two nodes share one name" in n.text for n in notes)
    # Our own frame looped back (same generation) is silently ignored, not counted.
    assert n1.receive(n1.frame(0, sim.now), 0, sim.now) == []
    assert n1.frames.rejected["duplicate_node"] == 1


def test_frame_limit_is_checked_before_start():
    from vigil.wire.framesize import frame_problem

    assert frame_problem(make_cluster(groups=2)) is None
    problem = frame_problem(make_cluster(groups=40))
    assert problem and "40 groups make a heartbeat of" in problem.message, problem


@SETTINGS
@given(seed=st.integers(0, 2**32), frozen_for=st.floats(1.2, 4.0), tick_first=st.booleans())
def test_a_frozen_owner_does_not_start_on_stale_news_when_it_wakes(seed, frozen_for,
                                                                     tick_first):
    """The classic pause (kill -STOP longer than deadtime): meanwhile the guard stopped the
    group and the peer took it over. On SIGCONT the frames queued in n1's sockets are old
    news: the oldest still acknowledge n1's assignment with the group stopped. n1 must not
    start on them (it did, for 1 ms, until node.py learned to hold starts after a stall)."""
    sim = Sim(seed, make_cluster(auto_failback=False))
    sim.run(1.0)
    assert sim.runners("g1") == ["n1"]
    sim.freeze("n1")
    t0 = sim.now
    sim.run(frozen_for)
    assert sim.runners("g1") == ["n2"] or sim.nodes["n1"].local["g1"] is GroupState.RUNNING
    sim.thaw("n1", ["g1"], tick_first)
    sim.run(3.0)
    assert [s for s in sim.start_log if s[1] == "n1" and s[2] == "g1" and s[0] > t0] == [], \
        sim.log[-20:]
    assert sim.runners("g1") == ["n2"]
    assert not sim.violations


@SETTINGS
@given(seed=st.integers(0, 2**32), frozen_for=st.floats(1.2, 4.0), tick_first=st.booleans())
def test_a_thawed_home_node_gets_its_group_back_as_a_planned_hand_over(seed, frozen_for,
                                                                       tick_first):
    """With auto_failback the group goes home once the thawed node may start again, and the
    peer keeps serving until then: never handed to a node that must still wait."""
    sim = Sim(seed, make_cluster(auto_failback=True), max_delay=0.002, action_time=0.003)
    sim.run(1.0)
    sim.freeze("n1")
    sim.run(frozen_for)
    thawed = sim.now
    sim.thaw("n1", ["g1"], tick_first)
    served_by: list[tuple[float, list[str]]] = []
    while sim.now < thawed + 3.0:
        sim.run(0.005)
        served_by.append((sim.now, sim.runners("g1")))
    gaps = [t for t, r in served_by if not r]
    assert len(gaps) <= 2, f"unserved for {len(gaps) * 5} ms after the thaw"  # one hand-over
    assert sim.runners("g1") == ["n1"]
    assert not sim.violations


def test_no_takeover_before_the_fence_agent_succeeds():
    import dataclasses

    from vigil.model import Fencing

    cluster = dataclasses.replace(make_cluster(), fencing=Fencing("fence_dummy", delay=0.0,
                                                                retry_interval=0.5))
    sim = Sim(5, cluster)
    sim.run(1.0)
    sim.crash("n1")
    sim.run(2.0)
    n2 = sim.nodes["n2"]
    assert sim.runners("g1") == [] and n2.fencing.state == "needed"
    assert n2.waiting["g1"] == "n1 is dead but not fenced yet"
    assert n2.side.fence_started() == 0.0 and n2.fencing.state == "running"
    n2.side.fence_result(False, "no answer", sim.now)
    sim._step("n2")
    sim.run(1.0)
    assert sim.runners("g1") == [], "a failed fence blocks (on_failure = block)"
    assert n2.fencing.state == "needed", "retried after retry_interval"
    n2.side.fence_started()
    n2.side.fence_result(True, "Powered OFF", sim.now)
    sim._step("n2")
    sim.run(0.1)
    assert sim.runners("g1") == ["n2"]


def test_a_peer_that_fails_to_stop_is_fenced_then_its_group_taken():
    """Issue 4, item 5: with fencing, a failed stop gets the node shot and the group moved;
    without, the group stays blocked and both logs say so."""
    import dataclasses

    from vigil.model import Fencing

    for fencing in (None, Fencing("fence_dummy", delay=0.0)):
        sim = Sim(7, dataclasses.replace(make_cluster(), fencing=fencing))
        sim.run(5.0)
        sim.fail_stop = 1.0
        sim.request("n1", "standby")
        sim.run(1.0)
        n1, n2 = sim.nodes["n1"], sim.nodes["n2"]
        assert n1.local["g1"] is GroupState.FAILED and sim.runners("g1") == []
        if fencing is None:
            assert any("n1 failed to stop group g1: it stays blocked" in l for l in sim.log)
            sim.run(5.0)
            assert sim.runners("g1") == [] and n2.local["g1"] is GroupState.STOPPED
            continue
        assert n2.fencing.state == "needed" and "failed to stop g1" in n2.fencing.detail
        assert n2.side.fence_started() == 0.0
        n2.side.fence_result(True, "Powered OFF", sim.now)
        sim.crash("n1")  # what the fence agent did
        sim._step("n2")
        sim.run(2.0)
        assert sim.runners("g1") == ["n2"] and n2.fencing.state == "done"
        assert not sim.violations


def test_the_log_says_what_heartbeat_said_at_the_same_moments():
    """Issue 6, item 7: the phrases seed 001's operators grep for."""
    sim = Sim(11)
    sim.run(5.0)
    for n in ("n1", "n2"):
        assert any(f"{n}: Local status now set to: 'up'" in l for l in sim.log)
        assert any(f"{n}: Local status now set to: 'active'" in l for l in sim.log)
    sim.crash("n2")
    sim.run(3.0)
    tail = [l for l in sim.log if " n1: " in l]
    joined = "\n".join(tail)
    assert "Link n2:eth0 dead." in joined and "node n2: is dead" in joined
    i = joined.index("Resources being acquired from n2.")
    j = joined.index("mach_down takeover complete for node n2.")
    assert i < joined.index("group g2 acquired") < j


def test_move_hands_one_group_and_leaves_the_other():
    """`move g1 n2` from n1 (or from n2) moves g1 only; g2 stays where it is; a move to the
    node that already has it changes nothing; unknown names are refused with the choices."""
    sim = Sim(7)
    sim.run(3.0)
    assert sim.runners("g1") == ["n1"] and sim.runners("g2") == ["n2"]
    for asker in ("n1", "n2"):
        sim.request(asker, "move", group="g1", to="n2")
        sim.run(2.0)
        assert sim.runners("g1") == ["n2"] and sim.runners("g2") == ["n2"]
        sim.request("n2" if asker == "n1" else "n1", "move", group="g1", to="n1")
        sim.run(2.0)
        assert sim.runners("g1") == ["n1"] and sim.runners("g2") == ["n2"]
    n1 = sim.nodes["n1"]
    assert n1.request("move", group="g1", to="n1").message == "group g1 is already assigned to n1"
    assert "groups: g1, g2" in n1.request("move", group="nope", to="n2").error
    assert "nodes: n1, n2" in n1.request("move", group="g1", to="n9").error
    assert not sim.violations


def test_a_restart_that_finds_a_group_in_part_restarts_it_in_place_at_once():
    """The daemon restarts (kill -9) and finds g1's exec but not its address: it adopts g1,
    which keeps it off n2, and restarts it in place from the address before its initdead is
    over, not when a monitor would notice. g2, found whole, is left alone."""
    sim = Sim(11, make_cluster(addresses=True))
    sim.run(1.0)
    sim.boot("n1", sim.crash("n1"), partly={"g1": 0})
    booted = sim.now
    sim.run(0.5)  # at once, heard n2 or not: well inside initdead (3 s)
    assert sim.recovers == {"g1": 1}, (sim.recovers, sim.log[-20:])
    assert any("found running only in part" in line for line in sim.log)
    assert sim.now - booted < sim.cluster.timings.initdead
    sim.run(4.0)
    assert not sim.violations, sim.violations
    assert sim.runners("g1") == ["n1"] and sim.runners("g2") == ["n2"]
    assert sim.recovers == {"g1": 1}, "once"
