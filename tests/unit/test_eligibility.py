"""What keeps a node off a group (core/eligibility.py): each fact its own reason, and the
verdicts kept as the facts change."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, strategies as st

from tests.unit.sim import make_cluster
from vigil.core.agenda import Agenda
from vigil.core.eligibility import Eligibility, FailCounts, Facts, Why, kept_off
from vigil.core.membership import Membership
from vigil.core.notes import Level
from vigil.core.peer import Peer
from vigil.core.witness import WitnessClient
from vigil.model import Timings
from vigil.wire.messages import GroupState, Heartbeat, NodeStatus
from vigil.wire.votes import Reply

GOOD = Facts(healthy=True, failed_start=False, banned=False, ping_worse=False,
             lease_lapsed=False, disk_lost=False)
BAD = {"healthy": (False, Why.UNHEALTHY), "failed_start": (True, Why.FAILED_START),
       "banned": (True, Why.BANNED), "ping_worse": (True, Why.PING),
       "lease_lapsed": (True, Why.LEASE), "disk_lost": (True, Why.DISK)}


@given(st.sets(st.sampled_from(sorted(BAD))))
def test_every_bad_fact_and_only_those_keep_the_node_off(bad: set[str]) -> None:
    facts = dataclasses.replace(GOOD, **{k: BAD[k][0] for k in bad})
    assert kept_off(facts) == {BAD[k][1] for k in bad}
    assert not kept_off(facts) == (not bad)


def test_failures_are_forgotten_after_the_timeout_and_bans_lift_on_time() -> None:
    f = FailCounts()
    assert f.failed("g", 10.0, 0.0) == 1 and f.failed("g", 10.0, 5.0) == 2
    assert f.count("g", 10.0, 10.5) == 1, "the first failure is 10.5 s old"
    assert f.count("g", 0.0, 1000.0) == 1, "no timeout: never forgotten"
    f.ban("g", 30.0, 5.0)
    f.ban("h", 0.0, 5.0)
    assert f.banned["h"] == math.inf and f.deadlines() == [35.0]
    assert f.expired(34.9) == [] and f.expired(35.0) == ["g"] and "g" not in f.banned
    f.failed_start["h"] = "rc=1"
    f.clear("h")
    assert "h" not in f.banned and "h" not in f.failed_start and f.count("h", 0.0, 99) == 0


# --- the verdicts: Eligibility ---------------------------------------------------------------

T = Timings(0.2, 0.5, 1.0, 3.0)
LINKS = ("eth0", "disk0")


def judge(witness: bool = False, pings: int = 0, disks: frozenset[str] = frozenset(),
          local: dict[str, GroupState] | None = None
          ) -> tuple[Eligibility, Membership, Peer, Agenda, WitnessClient | None]:
    m = Membership(["n2"], LINKS, T, 100.0)
    peer = Peer("n2", m, T.deadtime, disks)
    agenda = Agenda(T.keepalive)
    w = WitnessClient(2.0) if witness else None
    local = local if local is not None else {"g1": GroupState.RUNNING, "g2": GroupState.STOPPED}
    e = Eligibility(local, local, peer, w, agenda, pings, disks)
    agenda.take_send(0.0)
    return e, m, peer, agenda, w


def test_a_health_check_moves_a_group_off_and_back_home() -> None:
    e, _, _, agenda, _ = judge()
    assert e.set_health("g1", False, 100.0)[0].text == "this node cannot run group g1 now"
    assert not e.eligible["g1"] and not e.may_run("g1") and agenda.take_send(0.0)
    assert e.set_health("g1", False, 100.0) == [], "no news"
    assert e.set_health("g1", True, 100.0)[0].text == "this node can run group g1 now"
    assert agenda.take_failback() == {"g1"}, "it may come home"


def test_ipfail_hands_over_to_a_peer_that_reaches_more_ping_nodes() -> None:
    e, m, peer, _, _ = judge(pings=3)
    m.on_heartbeat("n2", "eth0", 1, 100.1)
    peer.adopt(Heartbeat(NodeStatus.UP, (), ping=3), (1, 1), {})
    notes = e.set_ping(2, 100.1)
    assert [n.text for n in notes] == ["ping nodes reachable: 2 of 3",
                                       "n2 reaches more ping nodes than this node: handing "
                                       "over what it can run"]
    assert not any(e.eligible.values())
    assert e.set_ping(3, 100.2)[0].level is Level.INFO and all(e.eligible.values())


def test_without_the_witness_lease_a_group_is_stopped_when_the_peer_is_unheard() -> None:
    e, m, peer, _, w = judge(witness=True)
    assert w is not None
    m.on_heartbeat("n2", "eth0", 1, 100.1)
    m.on_heartbeat("n2", "disk0", 1, 100.1)
    assert e.update_all(100.2) == [] and all(e.eligible.values()), "the peer is heard"
    peer.adopt(Heartbeat(NodeStatus.UP, (), hears_you=False), (1, 1), {})
    notes = e.update_all(100.2)
    assert not e.eligible["g1"] and e.eligible["g2"], "only what runs here needs a lease"
    assert notes[0].text.startswith("n2 counts this node dead and this node holds no lease")
    w.ask(1, ("g1",), 100.3)
    w.reply(Reply(1, 1, ("g1",), (("g1", "n1"),), lease_ms=2000), {"g1"}, "n1", "n2", False,
            "witness", 100.3)
    assert e.update_all(100.4) == [] and e.eligible["g1"], "held under its lease"
    assert e.update_all(101.3) and not e.eligible["g1"], "the lease ran out"


def test_losing_our_side_of_the_disk_while_the_peer_is_unheard_stops_the_groups() -> None:
    e, _, _, _, _ = judge(disks=frozenset({"disk0"}))
    notes = e.set_carrier("disk0", False, 100.0)
    assert notes[0].text.startswith("our side of link disk0 is down")
    assert "lost its disk heartbeat" in notes[1].text and not any(e.eligible.values())
    assert e.set_carrier("disk0", False, 100.0) == []
    assert e.set_carrier("disk0", True, 100.1)[0].text == "our side of link disk0 is up again"
    assert all(e.eligible.values())


def test_monitor_failures_restart_in_place_until_the_threshold_then_move_off() -> None:
    cluster = make_cluster()
    g1 = cluster.group("g1")
    e, _, _, _, _ = judge()
    for i in range(1, g1.policy.migration_threshold):
        notes, off = e.monitor_failed(g1, 0, "soft", "rc=1", 100.0 + i)
        assert not off and f"failure {i} of 3" in notes[0].text
    notes, off = e.monitor_failed(g1, 0, "soft", "rc=1", 104.0)
    assert off and "reach migration_threshold 3" in notes[0].text
    assert e.update("g1", 104.0) == [] and not e.eligible["g1"]
    assert e.fail_count(cluster, "g1", 104.0) == 3
    e.cleanup("g1", 105.0)
    assert e.eligible["g1"] and e.fail_count(cluster, "g1", 105.0) == 0
    notes, off = e.monitor_failed(g1, 0, "hard", "no such device", 106.0)
    assert off and "cannot run on this node (hard)" in notes[0].text
    e.update("g1", 106.0)
    assert e.expire(cluster, 106.0 + g1.policy.failure_timeout)[0].text.startswith(
        "group g1: failure_timeout passed")
    assert e.update("g1", 707.0) == [] and e.eligible["g1"]


@given(st.lists(st.tuples(st.sampled_from(["health", "carrier", "start", "ban", "cleanup"]),
                          st.sampled_from(["g1", "g2"]), st.booleans()), max_size=30))
def test_every_verdict_is_the_pure_function_of_the_facts(
        changes: list[tuple[str, str, bool]]) -> None:
    """Whatever order facts change in, each group's verdict is kept_off of its facts, and a
    group this node may run again is owed a failback."""
    e, _, _, agenda, _ = judge(disks=frozenset({"disk0"}))  # the peer unheard throughout
    healthy = {"g1": True, "g2": True}
    failed, banned, carrier = set(), set(), True
    for what, g, on in changes:
        before = dict(e.eligible)
        if what == "health":
            healthy[g] = on
            e.set_health(g, on, 100.0)
        elif what == "carrier":
            carrier = on
            e.set_carrier("disk0", on, 100.0)
        elif what == "start":
            failed.add(g)
            e.start_failed(g, "rc=1", 100.0)
        elif what == "ban":
            banned.add(g)
            e.fails.ban(g, 0.0, 100.0)
            e.update(g, 100.0)
        else:
            failed.discard(g)
            banned.discard(g)
            e.cleanup(g, 100.0)
        due = agenda.take_failback()
        for x in ("g1", "g2"):
            facts = Facts(healthy=healthy[x], failed_start=x in failed, banned=x in banned,
                          ping_worse=False, lease_lapsed=False, disk_lost=not carrier)
            assert e.eligible[x] == (not kept_off(facts))
            assert (x in due) == (e.eligible[x] and not before[x])
