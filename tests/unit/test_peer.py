"""The peer as a node knows it (core/peer.py): its reports and what is news in them, its
goodbye's window, and the partition alarm of the disk heartbeat."""

from __future__ import annotations

from hypothesis import given, strategies as st

from vigil.core.membership import Event, HeartbeatLate, LinkDead, LinkUp, Membership
from vigil.core.notes import Note
from vigil.core.notes import Level
from vigil.core.peer import News, Peer
from vigil.model import Timings
from vigil.wire.messages import Assignment, GroupReport, GroupState as S, Heartbeat, NodeStatus

T = Timings(0.2, 0.5, 1.0, 3.0)
LINKS = ("eth0", "disk0")
A = Assignment(0, "", "n2")


def hb(*groups: tuple[str, S, bool], status: NodeStatus = NodeStatus.UP) -> Heartbeat:
    return Heartbeat(status, tuple(GroupReport(g, s, A, e) for g, s, e in groups))


def peer(now: float = 100.0, disks: frozenset[str] = frozenset()) -> tuple[Peer, Membership]:
    m = Membership(["n2"], LINKS, T, now)
    return Peer("n2", m, T.deadtime, disks), m


LOCAL = {"g1": S.RUNNING, "g2": S.STOPPED}


def link_news(p: Peer, events: list[Event]) -> list[Note]:
    return [n for e in events if isinstance(e, (LinkUp, LinkDead, HeartbeatLate))
            for n in p.link_news(e)]


def test_only_a_newer_report_is_adopted_and_news_is_within_one_life() -> None:
    p, _ = peer()
    first = hb(("g1", S.RUNNING, False), ("g2", S.STOPPED, True))
    assert p.adopt(first, (1, 5), LOCAL) == News()
    assert p.adopt(hb(), (1, 5), LOCAL) is None and p.adopt(hb(), (1, 4), LOCAL) is None
    assert p.report is first
    news = p.adopt(hb(("g1", S.STOPPED, True), ("g2", S.FAILED, True), ("gone", S.FAILED, True)),
                   (1, 6), LOCAL)
    # g1: eligible again there, and its conflict with our RUNNING copy is over; g2 failed
    # there; "gone" is not a group of ours.
    assert news == News(eligible_again=("g1",), failed=("g2",), resolved=("g1",))
    assert p.adopt(hb(("g2", S.FAILED, True)), (1, 7), LOCAL) == News(), "still FAILED: old news"
    # A new life: nothing before it is compared, but FAILED is news again.
    assert p.adopt(hb(("g1", S.RUNNING, True), ("g2", S.FAILED, True)), (2, 1), LOCAL) == \
        News(failed=("g2",))


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 9)), max_size=30))
def test_the_report_is_always_the_newest_heard(keys: list[tuple[int, int]]) -> None:
    p, _ = peer()
    newest: tuple[int, int] | None = None
    for k in keys:
        report = hb(("g1", S.STOPPED, True))
        took = p.adopt(report, k, LOCAL) is not None
        assert took == (newest is None or k > newest)
        if took:
            newest = k
            assert p.report is report


def test_a_goodbye_counts_for_one_deadtime_for_the_groups_it_reported_stopped() -> None:
    p, m = peer()
    m.on_heartbeat("n2", "eth0", 1, 100.1)
    p.adopt(hb(("g1", S.STOPPED, False), ("g2", S.RUNNING, True),
               status=NodeStatus.LEAVING), (1, 1), LOCAL)
    assert not p.left_without("g1", 100.2), "no goodbye heard yet"
    m.on_heartbeat("n2", "eth0", 1, 100.2, leaving=True)
    p.died("shutdown", 100.2)
    assert p.left_at == 100.2 and p.dead_at is None and p.dead()
    assert p.left_without("g1", 100.2) and not p.left_without("g2", 100.2)
    assert p.deadlines(100.5) == [100.2 + T.deadtime]
    assert not p.left_without("g1", 100.2 + T.deadtime) and p.deadlines(101.2) == []
    p.came_back()
    assert p.left_at is None and p.dead_at is None
    p.died("deadtime", 105.0)
    assert p.dead_at == 105.0 and p.left_at is None


def test_a_peer_heard_only_on_its_disk_is_partitioned_not_dead() -> None:
    p, m = peer(disks=frozenset({"disk0"}))
    notes = link_news(p, m.on_heartbeat("n2", "eth0", 1, 100.1) +
                      m.on_heartbeat("n2", "disk0", 1, 100.1))
    assert [n.text for n in notes] == ["Link n2:eth0 up.", "Link n2:disk0 up."]
    assert not p.partitioned
    m.on_heartbeat("n2", "disk0", 1, 100.9)
    notes = link_news(p, m.on_tick(101.1))
    assert p.partitioned and notes[-1].level is Level.ERROR and "PARTITION" in notes[-1].text
    assert not p.dead() and p.restarting(2) and not p.restarting(1)
    notes = link_news(p, m.on_heartbeat("n2", "eth0", 1, 101.2))
    assert not p.partitioned and notes[-1].text.startswith("network partition over")


def test_what_the_parts_ask_of_the_peer() -> None:
    p, m = peer()
    assert not p.known() and p.unheard() and not p.serves() and not p.ping_worse(1)
    m.on_heartbeat("n2", "eth0", 1, 100.1)
    m.on_heartbeat("n2", "disk0", 1, 100.1)
    p.adopt(Heartbeat(NodeStatus.UP, (GroupReport("g1", S.STARTING, A, True),), ping=2),
            (1, 1), LOCAL)
    assert p.known() and not p.unheard() and p.serves()
    assert p.ping_worse(1) and not p.ping_worse(2) and not p.ping_worse(None)
    m.on_tick(101.2)
    assert p.dead() and not p.ping_worse(1), "a dead peer's ping count is no news"
