"""Issue 12, part 2: look before taking an address from a peer that went silent.

lookout.py alone, the node core's use of it, then the two-node simulation where every vigil
process of a node can die at once (its groups stay held on its host, their addresses
answering) and where only the heartbeat links are cut while the client network works: never
two hosts holding a group, whatever happens."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.unit.sim import KEY, LINKS, Sim, make_cluster
from vigil.core.lookout import Answer, Lookout, Unprobed
from vigil.model import Timings
from vigil.core.node import Node
from vigil.core.notes import Level
from vigil.policy import Probe, Start
from vigil.wire.messages import GroupState

T = Timings(0.2, 0.5, 1.0, 3.0)
A = (Answer("10.0.9.1", "02:00:00:00:00:01"),)
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --- the lookout alone ---------------------------------------------------------------------


def test_a_group_is_taken_only_once_its_addresses_are_heard_free() -> None:
    look = Lookout(retry=0.1)
    assert look.blocks("g1") is None and not look.due("g1", 0.0)  # not armed: no check
    look.arm(["g1"])
    assert look.blocks("g1") and "checking" in look.blocks("g1")
    assert look.due("g1", 0.0) and look.next_deadline() is None  # due at once, no timer
    look.started("g1")
    assert not look.due("g1", 0.0)  # one probe at a time
    assert look.found("g1", A, 0.01) == "answered"
    assert look.blocks("g1") == "10.0.9.1 still answered by 02:00:00:00:00:01"
    assert look.status("g1", 0.51) == {"answered": [{"address": "10.0.9.1",
                                                     "mac": "02:00:00:00:00:01"}],
                                       "unprobed": [], "since_ms": 500}
    assert not look.due("g1", 0.05) and look.next_deadline() == 0.11 and look.due("g1", 0.11)
    look.started("g1")
    assert look.found("g1", A, 0.12) is None  # the same answer: nothing new to say
    look.started("g1")
    assert look.found("g1", (), 0.3) == "free now"
    assert look.blocks("g1") is None and look.status("g1", 0.3) is None
    assert look.next_deadline() is None


def test_a_group_the_peer_was_not_running_is_heard_free_twice() -> None:
    look = Lookout(retry=0.1)
    look.arm(["g1", "g2"], twice=["g2"])
    for g in ("g1", "g2"):
        look.started(g)
        assert look.found(g, (), 0.01) is None
    assert look.blocks("g1") is None
    assert look.blocks("g2") and look.next_deadline() == 0.11  # a second look, a retry later
    look.started("g2")
    look.found("g2", (), 0.11)
    assert look.blocks("g2") is None


def test_an_address_that_could_not_be_probed_is_never_taken_for_silence() -> None:
    """The torture found it: a probe that failed (a stale ENETDOWN on the socket) counted as
    "nobody answered", and the group was taken on top of a live holder."""
    look = Lookout(retry=0.1)
    look.arm(["g1"])
    look.started("g1")
    assert look.found("g1", (Unprobed("10.0.9.1", "Network is down"),), 0.01) == "unprobed"
    assert look.blocks("g1") == "cannot probe 10.0.9.1 (Network is down)"
    assert look.status("g1", 0.01) == {"answered": [], "unprobed": [
        {"address": "10.0.9.1", "why": "Network is down"}], "since_ms": 0}
    assert look.due("g1", 0.11)
    look.started("g1")
    assert look.found("g1", (), 0.12) == "free now" and look.blocks("g1") is None


def test_cleared_when_the_peer_comes_back_and_stale_answers_are_ignored() -> None:
    look = Lookout(retry=0.1)
    look.arm(["g1"])
    look.started("g1")
    look.clear()
    assert look.found("g1", A, 0.01) is None and look.blocks("g1") is None


# --- the node core -------------------------------------------------------------------------


def pair() -> tuple[Node, Node]:
    c = make_cluster(timings=T, addresses=True)
    n1, n2 = (Node(c, n, KEY, g, LINKS, 100.0) for n, g in (("n1", 10), ("n2", 20)))
    for n in (n1, n2):
        n.probed({g.name: GroupState.STOPPED for g in c.groups})
    t = 100.0
    for _ in range(20):  # up, and each group started on its home
        for a, b in ((n1, n2), (n2, n1)):
            for link in (0, 1):
                b.receive(a.frame(link, t), link, t + 0.001)
            for act in b.step(t + 0.001).actions:
                b.finished(act.group, GroupState.RUNNING)
        t += 0.05
    assert n2.local["g2"] is GroupState.RUNNING and n1.local["g1"] is GroupState.RUNNING
    return n1, n2


def alone(n: Node, start: float, until: float) -> list[str]:
    """`n` goes on sending (to nobody) and ticking while its peer is silent."""
    notes, t = [], start
    while t < until:
        t = min(until, t + T.keepalive / 2)
        n.frame(0, t)
        n.frame(1, t)
        notes += [x.text for x in n.tick(t)]
    return notes


def test_a_silent_peers_group_is_probed_before_it_is_started_and_not_while_answered() -> None:
    n1, n2 = pair()
    t = 102.0  # n1 silent since 101.0: dead at deadtime
    assert "node n1: is dead (deadtime)" in alone(n2, 101.0, t)
    step = n2.step(t)
    assert [type(a) for a in step.actions] == [Probe] and step.actions[0].group == "g1"
    assert n2.local["g1"] is GroupState.STOPPED and "checking" in n2.waiting["g1"]
    notes = n2.side.probed_addresses("g1", A, t + 0.01)
    assert [n.level for n in notes] == [Level.ERROR]
    assert "10.0.9.1 still answered by 02:00:00:00:00:01: n1's host is alive" in notes[0].text
    assert n2.step(t + 0.01).actions == ()  # no start, no second probe before retry
    assert "still answered" in n2.waiting["g1"]
    assert n2.next_deadline() is not None and n2.next_deadline() <= t + 0.01 + T.keepalive
    again = t + 0.01 + T.keepalive
    alone(n2, t, again)
    assert [type(a) for a in n2.step(again).actions] == [Probe]
    notes = n2.side.probed_addresses("g1", (), again + 0.01)  # its host was reset meanwhile
    assert "answer no more" in notes[0].text
    step = n2.step(again + 0.01)
    assert [type(a) for a in step.actions] == [Start], step


def test_a_failed_probe_keeps_the_group_where_it_is() -> None:
    n1, n2 = pair()
    alone(n2, 101.0, 102.0)
    assert [type(a) for a in n2.step(102.0).actions] == [Probe]
    notes = n2.side.probed_addresses("g1", (Unprobed("10.0.9.1", "Network is down"),), 102.01)
    assert [n.level for n in notes] == [Level.ERROR] and "cannot probe 10.0.9.1" in notes[0].text
    assert n2.step(102.01).actions == () and n2.local["g1"] is GroupState.STOPPED
    assert "before its addresses are heard free" in n2.waiting["g1"]


def test_no_probe_after_a_goodbye_or_once_fenced() -> None:
    n1, n2 = pair()
    n1.leave()
    for act in n1.step(101.0).actions:
        n1.finished(act.group, GroupState.STOPPED)
    n1.step(101.0)
    n2.receive(n1.frame(0, 101.0), 0, 101.001)
    step = n2.step(101.001)
    assert [type(a) for a in step.actions] == [Start], step  # straight to the start


def test_the_peer_coming_back_ends_the_check() -> None:
    n1, n2 = pair()
    alone(n2, 101.0, 102.0)
    n2.step(102.0)
    n2.side.probed_addresses("g1", A, 102.01)
    n2.step(102.01)
    assert "still answered" in n2.waiting["g1"]
    # n1's daemon restarts on its host: it finds g1 running and keeps it.
    c = n1.cluster
    n1 = Node(c, "n1", KEY, 11, LINKS, 103.0)
    n1.probed({"g1": GroupState.RUNNING, "g2": GroupState.STOPPED})
    t = 103.0
    for _ in range(5):
        for a, b in ((n1, n2), (n2, n1)):
            for link in (0, 1):
                b.receive(a.frame(link, t), link, t + 0.001)
            b.step(t + 0.001)
        t += 0.05
    assert n2.membership.view("n1").liveness.value == "up"
    assert n2.lookout.blocks("g1") is None and n2.local["g1"] is GroupState.STOPPED
    assert n1.local["g1"] is GroupState.RUNNING


# --- the simulation: total kill, reset, heartbeat-only cuts -----------------------------------

fault = st.one_of(
    st.tuples(st.just("run"), st.floats(0.0, 2.0)),
    st.tuples(st.just("total_kill"), st.sampled_from(["n1", "n2"])),  # every vigil process
    st.tuples(st.just("reset"), st.sampled_from(["n1", "n2"])),  # its watchdog fires
    st.tuples(st.just("restart_daemon"), st.sampled_from(["n1", "n2"])),  # vigil started again
    st.tuples(st.just("cut"), st.booleans()),  # the heartbeat links only
    st.tuples(st.just("heal")),
    st.tuples(st.sampled_from(["standby", "takeover"]), st.sampled_from(["n1", "n2"])),
)


@SETTINGS
@given(seed=st.integers(0, 2**32), faults=st.lists(fault, max_size=20),
       loss=st.sampled_from([0.0, 0.1]), delay=st.sampled_from([0.002, 0.02]))
def test_never_two_hosts_hold_a_group_while_the_client_network_works(seed, faults, loss,
                                                                     delay):
    """Strict: at no moment is a group active on two hosts (a dead host still holding what
    it ran counts), through total kills and cuts of every heartbeat link. And once a dead
    host is reset, its groups are taken over."""
    sim = Sim(seed, make_cluster(timings=T, addresses=True), loss=loss, max_delay=delay)
    sim.run(1.0)

    def check() -> None:
        for g in ("g1", "g2"):
            assert len(sim.holders(g)) <= 1, (g, sim.holders(g), sim.log[-30:])

    for f in faults:
        match f:
            case ("run", seconds):
                end = sim.now + seconds
                while sim.now < end:
                    sim.run(min(0.01, end - sim.now))
                    check()
            case ("total_kill", name) if name in sim.nodes and len(sim.nodes) == 2:
                sim.crash(name, held=True)
            case ("reset", name) if name not in sim.nodes:
                sim.reset(name)
                sim.boot(name)  # it comes back up after the reboot
            case ("restart_daemon", name) if name not in sim.nodes:
                found = {g: GroupState.RUNNING if g in sim.held_by_dead.get(name, ())
                         else GroupState.STOPPED for g in ("g1", "g2")}
                sim.held_by_dead.pop(name, None)
                sim.boot(name, found)  # it finds what it left running and adopts it
            case _:
                sim.act(f)
        check()
    # Liveness: heal everything, reset a dead host: each group ends on exactly one host.
    sim.cut.clear()
    for name in list(sim.held_by_dead):
        sim.reset(name)
    sim.loss = 0.0
    for _ in range(800):
        sim.run(0.01)
        check()
    for g in ("g1", "g2"):
        assert len(sim.holders(g)) == 1, (g, sim.log[-30:])


def test_a_total_kill_is_taken_over_only_after_the_reset() -> None:
    sim = Sim(3, make_cluster(timings=T, addresses=True))
    sim.run(2.0)
    sim.crash("n1", held=True)  # g1 stays on n1's host, answering
    sim.run(5.0)
    assert sim.holders("g1") == ["n1"] and sim.probes > 10
    assert "still answered" in sim.nodes["n2"].waiting["g1"]
    sim.reset("n1")
    sim.run(0.5)
    assert sim.holders("g1") == ["n2"]
