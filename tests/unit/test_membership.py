"""Membership on a fake clock (plain floats): hand-written scenarios with exact events, and a
property test that drives random heartbeat schedules, ticks only at `next_deadline()`, checks
that ticking every millisecond in between would have found nothing earlier, and compares every
state against a declarative reference (status as a function of what was heard and when)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.core.membership import (
    Event,
    HeartbeatLate,
    LinkDead,
    LinkUp,
    LinkView,
    Liveness,
    Membership,
    NodeDead,
    NodeUp,
    NodeView,
)
from vigil.model import Timings, check_timings

UP, DEAD, UNKNOWN = Liveness.UP, Liveness.DEAD, Liveness.UNKNOWN

# Binary fractions only, so that every sum below is exact and deadlines can be written down.
T = Timings(keepalive=0.25, warntime=0.5, deadtime=1.0, initdead=4.0)
START = 100.0
LINKS = ("eth0", "eth1")


def before(t: float) -> float:
    """The last representable instant before t."""
    return math.nextafter(t, -math.inf)


def two_links(start: float = START, timings: Timings = T) -> Membership:
    return Membership(["n2"], LINKS, timings, start)


def one_link(start: float = START, timings: Timings = T) -> Membership:
    return Membership(["n2"], ["eth0"], timings, start)


# ---- links and deadtime -------------------------------------------------------------------


def test_link_dead_exactly_at_deadtime_and_not_before() -> None:
    m = one_link()
    assert m.on_heartbeat("n2", "eth0", 1, 100.5) == [LinkUp("n2", "eth0"), NodeUp("n2", 1, False)]
    assert m.next_deadline() == 101.5
    assert m.on_tick(101.0) == []
    assert m.on_tick(before(101.5)) == []
    assert m.view("n2").liveness is UP
    assert m.on_tick(101.5) == [LinkDead("n2", "eth0", 1.0), NodeDead("n2", "deadtime")]
    assert m.next_deadline() is None
    assert m.on_tick(200.0) == []
    assert m.view("n2") == NodeView("n2", DEAD, 1, False, (LinkView("eth0", DEAD, 100.5),), 100.5)


def test_each_heartbeat_pushes_the_deadline() -> None:
    m = one_link()
    m.on_heartbeat("n2", "eth0", 1, 100.0)
    for t in (100.25, 100.5, 100.75, 101.0):
        assert m.on_tick(before(t - 0.25 + 1.0)) == []
        assert m.on_heartbeat("n2", "eth0", 1, t) == []
        assert m.next_deadline() == t + 1.0


def test_deadtime_counts_from_when_a_frame_was_made_not_when_it_arrived() -> None:
    """session.py: a frame held back (or replayed) proves its sender alive when it was made;
    it buys the sender no time, and a frame older than the newest one moves nothing back."""
    m = one_link()
    m.on_heartbeat("n2", "eth0", 1, 100.5, made=100.25)
    assert m.next_deadline() == 101.25
    assert m.on_heartbeat("n2", "eth0", 1, 100.75, made=100.0) == []  # older: no earlier
    assert m.next_deadline() == 101.25
    assert m.on_heartbeat("n2", "eth0", 1, 101.0, made=100.75) == []
    assert m.next_deadline() == 101.75
    # Lateness is between the moments the frames were made.
    assert m.on_heartbeat("n2", "eth0", 1, 101.5, made=101.5) == [
        HeartbeatLate("n2", "eth0", 0.75)]
    # A frame made a deadtime ago or more proves nothing now: no revival of a dead link.
    assert m.on_tick(102.5) == [LinkDead("n2", "eth0", 1.0), NodeDead("n2", "deadtime")]
    assert m.on_heartbeat("n2", "eth0", 1, 103.0, made=102.0) == []
    assert m.view("n2").liveness is DEAD


def test_one_live_link_keeps_the_node_up() -> None:
    m = two_links()
    assert m.on_heartbeat("n2", "eth0", 1, 100.5) == [LinkUp("n2", "eth0"), NodeUp("n2", 1, False)]
    assert m.on_heartbeat("n2", "eth1", 1, 100.75) == [LinkUp("n2", "eth1")]
    assert m.next_deadline() == 101.5
    assert m.on_heartbeat("n2", "eth1", 1, 101.25) == []
    assert m.on_tick(101.5) == [LinkDead("n2", "eth0", 1.0)]
    assert m.view("n2").liveness is UP
    assert m.next_deadline() == 102.25
    assert m.on_heartbeat("n2", "eth1", 1, 101.75) == []
    assert m.on_tick(before(102.75)) == []
    assert m.on_tick(102.75) == [LinkDead("n2", "eth1", 1.0), NodeDead("n2", "deadtime")]
    # The node comes back on either link; the gap is not "late", the link was dead.
    assert m.on_heartbeat("n2", "eth1", 1, 110.0) == [LinkUp("n2", "eth1"), NodeUp("n2", 1, False)]
    assert m.on_heartbeat("n2", "eth0", 1, 110.25) == [LinkUp("n2", "eth0")]


def test_both_links_dying_in_one_tick() -> None:
    m = two_links()
    m.on_heartbeat("n2", "eth0", 1, 100.5)
    m.on_heartbeat("n2", "eth1", 1, 100.75)
    # A tick that comes late reports how long each link was really silent.
    assert m.on_tick(110.0) == [LinkDead("n2", "eth0", 9.5), LinkDead("n2", "eth1", 9.25),
                                NodeDead("n2", "deadtime")]


def test_late_heartbeat() -> None:
    m = one_link()
    m.on_heartbeat("n2", "eth0", 1, 100.0)
    assert m.on_heartbeat("n2", "eth0", 1, 100.5) == []  # exactly warntime: on time
    assert m.on_heartbeat("n2", "eth0", 1, 101.25) == [HeartbeatLate("n2", "eth0", 0.75)]
    assert m.on_heartbeat("n2", "eth0", 1, before(102.25)) == \
        [HeartbeatLate("n2", "eth0", before(102.25) - 101.25)]
    assert m.view("n2").liveness is UP


def test_lateness_is_per_link() -> None:
    m = two_links()
    m.on_heartbeat("n2", "eth0", 1, 100.0)
    m.on_heartbeat("n2", "eth1", 1, 100.0)
    assert m.on_heartbeat("n2", "eth0", 1, 100.25) == []
    assert m.on_heartbeat("n2", "eth1", 1, 100.75) == [HeartbeatLate("n2", "eth1", 0.75)]


def test_regression_deadline_that_does_not_survive_a_round_trip_through_subtraction() -> None:
    # 0.4 + 1.0 - 0.4 == 0.9999999999999999 < 1.0: on_tick used to compare `now - last`
    # with deadtime, so a tick at next_deadline() changed nothing and the deadline stayed
    # in the past (the daemon would spin on it).
    m = Membership(["n2"], ["eth0"], Timings(0.2, 0.5, 1.0, 3.0), 0.0)
    m.on_heartbeat("n2", "eth0", 1, 0.4)
    d = m.next_deadline()
    assert d is not None
    assert m.on_tick(d) == [LinkDead("n2", "eth0", d - 0.4), NodeDead("n2", "deadtime")]
    # Same for initdead: 1.1 + 3.0 - 1.1 < 3.0.
    m = Membership(["n2"], ["eth0"], Timings(0.2, 0.5, 1.0, 3.0), 1.1)
    d = m.next_deadline()
    assert d is not None
    assert m.on_tick(d) == [NodeDead("n2", "initdead")]


# ---- initdead -----------------------------------------------------------------------------


def test_never_heard_peer_is_dead_at_initdead_not_before() -> None:
    m = two_links()
    assert m.view("n2") == NodeView("n2", UNKNOWN, None, False,
                                    (LinkView("eth0", UNKNOWN, None),
                                     LinkView("eth1", UNKNOWN, None)), None)
    assert m.next_deadline() == 104.0
    assert m.on_tick(103.0) == []
    assert m.on_tick(before(104.0)) == []
    assert m.view("n2").liveness is UNKNOWN
    # Never-heard links die silently: there was never a LinkUp to pair a LinkDead with.
    assert m.on_tick(104.0) == [NodeDead("n2", "initdead")]
    assert m.view("n2") == NodeView("n2", DEAD, None, False,
                                    (LinkView("eth0", DEAD, None),
                                     LinkView("eth1", DEAD, None)), None)
    assert m.next_deadline() is None
    assert m.on_tick(104.5) == []
    assert m.on_heartbeat("n2", "eth1", 3, 105.0) == [LinkUp("n2", "eth1"), NodeUp("n2", 3, False)]


def test_heartbeat_before_initdead_makes_the_peer_up() -> None:
    m = two_links()
    assert m.on_heartbeat("n2", "eth0", 1, 103.5) == [LinkUp("n2", "eth0"), NodeUp("n2", 1, False)]
    assert m.next_deadline() == 104.0  # eth1, still never heard
    assert m.on_tick(104.0) == []
    assert [lv.status for lv in m.view("n2").links] == [UP, DEAD]
    assert m.next_deadline() == 104.5
    assert m.on_tick(104.5) == [LinkDead("n2", "eth0", 1.0), NodeDead("n2", "deadtime")]


def test_a_link_never_heard_from_a_node_that_came_up_is_dead_a_deadtime_later() -> None:
    # Heard on eth0 only, which then falls silent while initdead still runs: eth1, never
    # heard though the node came up a deadtime ago, is dead too, so the node is dead at
    # eth0's deadtime, not only once initdead settles eth1 (the replay simulation's check
    # found a dead node counted up for 3 s so).
    m = two_links()
    m.on_heartbeat("n2", "eth0", 1, 100.5)
    assert m.next_deadline() == 101.5
    assert m.on_tick(101.5) == [LinkDead("n2", "eth0", 1.0), NodeDead("n2", "deadtime")]
    assert m.view("n2").links[1].status is DEAD


def test_a_link_not_heard_yet_is_not_dead_while_the_node_is_new() -> None:
    m = two_links()
    m.on_heartbeat("n2", "eth0", 1, 100.5)
    m.on_heartbeat("n2", "eth0", 1, 101.0)
    assert m.on_tick(101.25) == [] and m.view("n2").links[1].status is UNKNOWN
    assert m.on_tick(101.5) == [] and m.view("n2").links[1].status is DEAD
    assert m.view("n2").liveness is UP


def test_several_peers_in_configured_order() -> None:
    m = Membership(["n2", "n3"], ["eth0"], T, START)
    m.on_heartbeat("n3", "eth0", 1, 100.0)
    # One late tick settles everything due, peer by peer in configured order.
    assert m.on_tick(104.0) == [NodeDead("n2", "initdead"), LinkDead("n3", "eth0", 4.0),
                                NodeDead("n3", "deadtime")]


# ---- generations and leaving --------------------------------------------------------------


def test_new_generation_is_a_restart() -> None:
    m = two_links()
    m.on_heartbeat("n2", "eth0", 1, 100.0)
    # A gap past warntime is not "late" across a restart: the new life just began.
    assert m.on_heartbeat("n2", "eth0", 2, 100.75) == [NodeUp("n2", 2, True)]
    assert m.view("n2").generation == 2
    assert m.on_heartbeat("n2", "eth1", 2, 100.75) == [LinkUp("n2", "eth1")]
    assert m.on_heartbeat("n2", "eth0", 2, 101.0) == []
    # Dead, then back with a new generation: restarted too.
    assert m.on_tick(102.0) == [LinkDead("n2", "eth0", 1.0), LinkDead("n2", "eth1", 1.25),
                                NodeDead("n2", "deadtime")]
    assert m.on_heartbeat("n2", "eth1", 3, 103.0) == [LinkUp("n2", "eth1"), NodeUp("n2", 3, True)]
    # Dead, then back with the same generation: not a restart (a partition healed).
    m.on_tick(104.0)
    assert m.on_heartbeat("n2", "eth0", 3, 105.0) == [LinkUp("n2", "eth0"), NodeUp("n2", 3, False)]


def test_leaving() -> None:
    m = two_links()
    m.on_heartbeat("n2", "eth0", 1, 100.0)
    m.on_heartbeat("n2", "eth1", 1, 100.0)
    assert m.on_heartbeat("n2", "eth0", 1, 100.25, leaving=True) == [NodeDead("n2", "shutdown")]
    v = m.view("n2")
    assert (v.liveness, v.left, v.generation) == (DEAD, True, 1)
    # Later frames of the life that said goodbye change nothing, leaving or not.
    assert m.on_heartbeat("n2", "eth1", 1, 100.5, leaving=True) == []
    assert m.on_heartbeat("n2", "eth1", 1, 100.75) == []
    assert m.on_heartbeat("n2", "eth0", 1, 102.0) == []
    assert m.view("n2").links == (LinkView("eth0", UP, 100.25), LinkView("eth1", UP, 100.0))
    # The links fall silent as usual; the node is already dead.
    assert m.on_tick(101.0) == [LinkDead("n2", "eth1", 1.0)]
    assert m.on_tick(101.25) == [LinkDead("n2", "eth0", 1.0)]
    assert m.view("n2").left
    # A new life brings it back.
    assert m.on_heartbeat("n2", "eth0", 2, 103.0) == [LinkUp("n2", "eth0"), NodeUp("n2", 2, True)]
    v = m.view("n2")
    assert (v.liveness, v.left, v.generation) == (UP, False, 2)


def test_restart_right_after_leaving_while_links_are_up() -> None:
    m = one_link()
    m.on_heartbeat("n2", "eth0", 1, 100.0)
    m.on_heartbeat("n2", "eth0", 1, 100.25, leaving=True)
    assert m.on_heartbeat("n2", "eth0", 2, 100.5) == [NodeUp("n2", 2, True)]


def test_leaving_as_the_first_word() -> None:
    m = one_link()
    assert m.on_heartbeat("n2", "eth0", 4, 100.0, leaving=True) == \
        [LinkUp("n2", "eth0"), NodeDead("n2", "shutdown")]
    assert m.on_tick(101.0) == [LinkDead("n2", "eth0", 1.0)]
    assert m.on_tick(104.0) == []
    assert m.view("n2").liveness is DEAD and m.view("n2").left


# ---- the deadline property ----------------------------------------------------------------


@st.composite
def timings(draw: st.DrawFn) -> Timings:
    """Valid timings, small enough for a 1 ms grid to be cheap; random floats so that the
    rounding of `last + deadtime` gets exercised."""
    fixed = st.sampled_from([Timings(0.02, 0.05, 0.1, 0.3), Timings(0.02, 0.03, 0.05, 0.05),
                             Timings(0.05, 0.1, 0.2, 0.2)])
    keepalive = draw(st.floats(0.01, 0.05))
    deadtime = keepalive * draw(st.floats(2.0, 4.0))
    warntime = keepalive + (deadtime - keepalive) * draw(st.floats(0.05, 0.95))
    initdead = deadtime * draw(st.floats(1.0, 3.0))
    t = draw(st.one_of(fixed, st.just(Timings(keepalive, warntime, deadtime, initdead))))
    assert check_timings(t) == []
    return t


@dataclass
class Ref:
    """Status as a function of what was heard and when, written independently of the code."""

    t: Timings
    start: float
    last: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(LINKS))
    generation: int | None = None
    left: int | None = None  # generation that said it is leaving
    said_leaving: bool = False  # the newest accepted heartbeat said "leaving"
    up_since: float | None = None  # when the node first came up

    def link(self, name: str, now: float) -> Liveness:
        last = self.last[name]
        if last is None:
            chance = self.up_since is not None and now >= self.up_since + self.t.deadtime
            return UNKNOWN if now < self.start + self.t.initdead and not chance else DEAD
        return UP if now < last + self.t.deadtime else DEAD

    def node(self, now: float) -> Liveness:
        if self.generation is None:
            return UNKNOWN if now < self.start + self.t.initdead else DEAD
        if self.said_leaving or all(self.link(n, now) is DEAD for n in LINKS):
            return DEAD
        return UP


def check_view(m: Membership, ref: Ref, now: float) -> None:
    v = m.view("n2")
    assert v.liveness is ref.node(now)
    assert v.links == tuple(LinkView(n, ref.link(n, now), ref.last[n]) for n in LINKS)
    assert v.generation == ref.generation
    assert v.last == max((x for x in ref.last.values() if x is not None), default=None)
    if v.left:
        assert ref.said_leaving


def expected_tick_events(ref: Ref, before_t: float, now: float) -> list[Event]:
    """Only status changes make tick events: a link UP -> DEAD, the node -> DEAD."""
    events: list[Event] = []
    for n in LINKS:
        if ref.link(n, before_t) is UP and ref.link(n, now) is DEAD:
            last = ref.last[n]
            assert last is not None
            events.append(LinkDead("n2", n, now - last))
    was, new = ref.node(before_t), ref.node(now)
    if was is not DEAD and new is DEAD:
        events.append(NodeDead("n2", "initdead" if was is UNKNOWN else "deadtime"))
    return events


ops = st.lists(
    st.tuples(
        st.one_of(st.floats(0.0, 2.5), st.sampled_from([0.0, 1.0])),  # gap, in deadtimes
        st.sampled_from(LINKS),
        st.sampled_from(["hb", "hb", "hb", "restart", "leave", "straggler"]),
    ),
    max_size=15,
)


@settings(max_examples=150, deadline=None)
@given(timings(), st.one_of(st.floats(0.0, 1e6), st.sampled_from([0.0, 0.1, 1.1])), ops)
def test_next_deadline_is_sufficient(t: Timings, start: float,
                                     schedule: list[tuple[float, str, str]]) -> None:
    m = Membership(["n2"], LINKS, t, start)
    ref = Ref(t, start)
    now = start
    check_view(m, ref, now)

    def run_until(until: float) -> None:
        """Tick only at deadlines up to `until`, proving on a 1 ms grid and at the instant
        just before each deadline that nothing could have been found any earlier."""
        nonlocal now
        for _ in range(10):  # each tick settles something; there are only a few things
            d = m.next_deadline()
            upper = until if d is None else min(d, until)
            k = 1
            while now + k * 0.001 < upper:
                assert m.on_tick(now + k * 0.001) == []
                k += 1
            if before(upper) > now:
                assert m.on_tick(before(upper)) == []
            check_view(m, ref, max(now, before(upper)))
            if d is None or d > until:
                return
            assert d >= now
            expected = expected_tick_events(ref, before(d), d)
            assert m.on_tick(d) == expected
            now = d
            check_view(m, ref, now)
            nd = m.next_deadline()
            assert nd is None or nd > d, "ticking at next_deadline() settled nothing"
        raise AssertionError("deadlines did not settle")

    generation = 1
    for gap, link, kind in schedule:
        at = now + gap * t.deadtime
        run_until(at)
        now = at
        leaving = kind == "leave"
        if kind == "restart":
            generation += 1
        gen = ref.left if kind == "straggler" and ref.left is not None else generation
        if gen == ref.left:
            assert m.on_heartbeat("n2", link, gen, now, leaving=leaving) == []
            check_view(m, ref, now)
            continue
        was_link, was_node, was_gen = ref.link(link, now), ref.node(now), ref.generation
        prev_last = ref.last[link]
        restarted = was_gen is not None and gen != was_gen
        was_leaving = ref.said_leaving
        ref.last[link] = now
        ref.generation = gen
        ref.said_leaving = leaving
        if leaving:
            ref.left = gen
        expected: list[Event] = []
        if was_link is UP and not restarted:
            assert prev_last is not None
            if now - prev_last > t.warntime:
                expected.append(HeartbeatLate("n2", link, now - prev_last))
        if was_link is not UP:
            expected.append(LinkUp("n2", link))
        is_node = ref.node(now)
        if is_node is UP and (was_node is not UP or restarted):
            expected.append(NodeUp("n2", gen, restarted))
            if ref.up_since is None:
                ref.up_since = now
        # A goodbye after deadtime got there first is news too: it says what it left running.
        if is_node is DEAD and (was_node is not DEAD or not was_leaving):
            expected.append(NodeDead("n2", "shutdown"))
        assert m.on_heartbeat("n2", link, gen, now, leaving=leaving) == expected
        check_view(m, ref, now)
    run_until(now + t.initdead + 2 * t.deadtime)
    assert m.next_deadline() is None


# --- our own side of a link (set_local) ---------------------------------------------------


def test_silence_on_a_locally_down_link_is_no_evidence() -> None:
    m = one_link()
    m.on_heartbeat("n2", "eth0", 1, START + 0.1)
    m.set_local("eth0", False, START + 0.2)
    events = m.on_tick(START + 1.1)
    assert events == [LinkDead("n2", "eth0", 1.0)], "the link itself is dead..."
    assert m.view("n2").liveness is Liveness.UP, "...but that says nothing about n2"
    assert m.on_tick(START + 100) == []


def test_back_up_gives_the_peer_deadtime_to_be_heard() -> None:
    m = one_link()
    m.on_heartbeat("n2", "eth0", 1, START + 0.1)
    m.set_local("eth0", False, START + 0.2)
    m.on_tick(START + 1.1)
    m.set_local("eth0", True, START + 5.0)
    assert m.next_deadline() == START + 5.0 + T.deadtime
    assert m.on_tick(before(START + 5.0 + T.deadtime)) == []
    assert m.on_tick(START + 5.0 + T.deadtime) == [NodeDead("n2", "deadtime")]


def test_back_up_and_heard_in_time_keeps_the_peer_up() -> None:
    m = one_link()
    m.on_heartbeat("n2", "eth0", 1, START + 0.1)
    m.set_local("eth0", False, START + 0.2)
    m.on_tick(START + 1.1)
    m.set_local("eth0", True, START + 5.0)
    assert m.on_heartbeat("n2", "eth0", 1, START + 5.3) == [LinkUp("n2", "eth0")]
    assert m.on_tick(START + 6.0) == []
    assert m.view("n2").liveness is Liveness.UP


def test_all_links_locally_down_at_initdead_neither_kills_nor_spins() -> None:
    """Found by review: with no evidence past initdead, next_deadline() must not stay in
    the past (a daemon ticking there would spin)."""
    m = two_links()
    m.set_local("eth0", False, START)
    m.set_local("eth1", False, START)
    m.on_tick(START + T.initdead)
    assert m.view("n2").liveness is Liveness.UNKNOWN
    assert m.next_deadline() is None
    m.set_local("eth1", True, START + 10)
    assert m.next_deadline() == START + 10 + T.deadtime
    assert m.on_tick(START + 10 + T.deadtime) == [NodeDead("n2", "initdead")]


def test_leave_after_a_deadtime_death_still_counts_as_left() -> None:
    m = one_link()
    m.on_heartbeat("n2", "eth0", 1, START + 0.1)
    m.on_tick(START + 1.1)
    # Said again as a shutdown: the node acts on what the goodbye reports (nothing to settle).
    assert m.on_heartbeat("n2", "eth0", 1, START + 1.2, leaving=True) == [
        LinkUp("n2", "eth0"), NodeDead("n2", "shutdown")]
    assert m.view("n2").left
