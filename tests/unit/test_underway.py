"""The work under way on the groups (core/underway.py) alone: what probes find, what each
action and its end mean for the log, and random interleavings of a takeover's starts."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from tests.unit.sim import make_cluster
from vigil.core.agenda import Agenda
from vigil.core.eligibility import Eligibility
from vigil.core.groups import LocalGroups
from vigil.core.lookout import Lookout
from vigil.core.membership import Membership
from vigil.core.peer import Peer
from vigil.core.underway import Underway
from vigil.model import Timings
from vigil.policy import Probe, Recover, Start, Stop
from vigil.wire.messages import GroupState as S

T = Timings(0.2, 0.5, 1.0, 3.0)
CLUSTER = make_cluster(groups=3)
NAMES = [g.name for g in CLUSTER.groups]


def underway(dead: bool = False) -> tuple[Underway, Peer, Agenda]:
    m = Membership(["n2"], ("eth0",), T, 100.0)
    if dead:
        m.on_tick(100.0 + T.initdead)
    peer = Peer("n2", m, T.deadtime)
    agenda = Agenda(T.keepalive)
    groups = LocalGroups(NAMES)
    e = Eligibility(NAMES, groups.states, peer, None, agenda)
    u = Underway(groups, e, Lookout(T.keepalive), agenda)
    u.probed({g: S.STOPPED for g in NAMES})
    return u, peer, agenda


def texts(notes: list[object]) -> list[str]:
    return [getattr(n, "text") for n in notes]


def test_probes_adopt_what_they_find() -> None:
    m = Membership(["n2"], ("eth0",), T, 100.0)
    agenda = Agenda(T.keepalive)
    groups = LocalGroups(["g1", "g2"])
    u = Underway(groups, Eligibility(["g1", "g2"], groups.states, Peer("n2", m, 1.0), None,
                                     agenda), Lookout(0.2), agenda)
    assert texts(u.probed({"g1": S.RUNNING, "g2": S.STOPPED})) == [
        "group g1 found running at start: adopting it, not starting it again"]
    assert u.probed_new("g1", S.STOPPED) == [], "only a group added by a reload is UNKNOWN"
    groups.add("g3")
    assert texts(u.probed_new("g3", S.FAILED)) == [
        "group g3 added by reload: found failed here; adopting it, not starting it again"]
    assert texts(u.reprobed("g3", S.STOPPED, "cleaned up")) == [
        "group g3 cleaned up: probe found it stopped"]
    assert groups.states == {"g1": S.RUNNING, "g2": S.STOPPED, "g3": S.STOPPED}


def test_a_restart_in_place_is_recovered_and_a_failed_start_keeps_the_node_off() -> None:
    u, peer, agenda = underway()
    u.take([Start("g1", "(home)")], CLUSTER, peer)
    u.finished("g1", S.RUNNING, "", 12.0, "n2", 100.0)
    assert u.resource_failed(CLUSTER, "g1", 0, "soft", "rc=7", 101.0, 101.0)
    assert u.restarts == {"g1": 0}
    notes = u.take([Recover("g1", 0, "monitor")], CLUSTER, peer)
    assert texts(notes) == ["recovering group g1 from exec true"] and u.restarts == {}
    assert texts(u.finished("g1", S.RUNNING, "", 5.0, "n2", 101.0)) == [
        "group g1 recovered in 5 ms"]
    u.take([Start("g2", "(home)")], CLUSTER, peer)
    assert texts(u.finished("g2", S.STOPPED, "rc=1", None, "n2", 101.0)) == [
        "group g2 failed to start: rc=1"]
    assert not u.eligibility.eligible["g2"] and u.eligibility.eligible["g1"]
    u.take([Stop("g1", "standby")], CLUSTER, peer)
    assert texts(u.finished("g1", S.FAILED, "rc=1", None, "n2", 101.0))[0].endswith(
        "it stays blocked on this node (its resources may still be held)")
    with pytest.raises(AssertionError):
        u.finished("g1", S.RUNNING, "", None, "n2", 101.0)  # nothing under way


def test_a_probe_only_tells_the_lookout_and_the_settled_node_says_so_once() -> None:
    u, peer, agenda = underway(dead=True)
    agenda.take_send(0.0)
    u.lookout.arm(["g1"])
    assert u.take([Probe("g1")], CLUSTER, peer) == [] and not agenda.send
    assert not u.lookout.due("g1", 200.0), "running"
    assert texts(u.settled(True, False, peer)) == ["Local status now set to: 'active'"]
    assert u.settled(True, False, peer) == []


@given(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from([S.RUNNING, S.STOPPED])),
                max_size=12))
def test_a_takeover_is_complete_once_the_last_of_its_groups_runs(
        ends: list[tuple[str, S]]) -> None:
    """The peer is dead: every group is started, and they end in any order, some failing.
    "Resources being acquired" opens the takeover once; it is "complete" exactly when a
    start runs and no other start of it is still under way."""
    u, peer, _ = underway(dead=True)
    notes = texts(u.take([Start(g, "(takeover)") for g in NAMES], CLUSTER, peer))
    assert notes.count("Resources being acquired from n2.") == 1
    taking = set(NAMES)
    for g, result in ends:
        if u.groups.states[g] is not S.STARTING:
            continue  # ended already
        notes = texts(u.finished(g, result, "rc=1", None, "n2", 200.0))
        taking.discard(g)
        complete = "mach_down takeover complete for node n2." in notes
        assert complete == (result is S.RUNNING and not taking)


def test_a_group_found_in_part_is_restarted_in_place_from_what_is_absent() -> None:
    """A crash between two starts, a host reset that left a pid file: the probe finds the
    group's second resource but not its first. The group is adopted (it must not start on
    the peer) and restarted in place from the first, not left without it until a monitor
    notices; a stop or a restart taken for it settles the matter."""
    c = make_cluster(groups=3, addresses=True)  # each group: an address, then an exec
    m = Membership(["n2"], ("eth0",), T, 100.0)
    agenda = Agenda(T.keepalive)
    groups = LocalGroups(["g1", "g2"])
    u = Underway(groups, Eligibility(["g1", "g2"], groups.states, Peer("n2", m, 1.0), None,
                                     agenda), Lookout(0.2), agenda)
    first = c.group("g1").resources[0].name
    assert texts(u.probed({"g1": S.RUNNING, "g2": S.RUNNING}, {"g1": 0}, c)) == [
        f"group g1 at start: found running only in part ({first} is not here): adopting "
        f"it, and restarting it in place from {first} if it stays here",
        "group g2 found running at start: adopting it, not starting it again"]
    assert groups.states == {"g1": S.RUNNING, "g2": S.RUNNING}
    assert u.recover() == {"g1": 0}
    u.take([], c, Peer("n2", m, 1.0))
    assert u.recover() == {"g1": 0}, "asked until the policy acts on it"
    u.restarts["g1"] = 1  # a monitor failed meanwhile: the earlier resource wins
    assert u.recover() == {"g1": 0}
    u.take([Recover("g1", 0, "")], c, Peer("n2", m, 1.0))
    assert u.recover() == {} and groups.states["g1"] is S.STARTING
    groups.add("g3")
    assert "found running only in part" in texts(u.probed_new("g3", S.RUNNING, 0, c))[0]
    u.take([Stop("g3", "assigned to n2")], c, Peer("n2", m, 1.0))
    assert u.recover() == {}
