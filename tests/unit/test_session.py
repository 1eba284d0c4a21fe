"""Issue 12, part 3: a captured frame never makes a node believe its peer is alive.

session.py on its own, then two real node cores, then the simulation with an attacker that
replays any frame it ever saw, at any moment, to either node."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings, strategies as st

from tests.unit.sim import KEY, LINKS, Sim, make_cluster
from vigil.model import Timings, Witness
from vigil.core.node import Node
from vigil.core.notes import Level
from vigil.core.session import DRIFT, Session, Verdict
from vigil.wire.messages import Echo, GroupState

T = Timings(0.2, 0.5, 1.0, 3.0)  # the simulation's: max_age is half the deadtime, 0.5 s
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --- the session alone ----------------------------------------------------------------------


def v(s: Session, *args: object, **kw: object) -> Verdict:
    return s.judge(*args, **kw)[0]  # type: ignore[arg-type]


def test_a_generation_without_an_echo_of_this_life_proves_nothing() -> None:
    s = Session(T, now=10.0)
    assert v(s, 7, made=0, echo=None, my_generations={1}, now=10.0) is Verdict.UNBOUND
    s.sent(5, 10.0)
    # It echoes seq 5, but of another life of ours (generation 0): captured before we began.
    assert v(s, 7, 1, Echo(0, 5, 0), {1}, 10.01) is Verdict.UNBOUND
    # Or a seq we never sent.
    assert v(s, 7, 1, Echo(1, 6, 0), {1}, 10.01) is Verdict.UNBOUND
    assert s.judge(7, 1, None, {1}, 10.01) == (Verdict.UNBOUND, None)


def test_an_answer_ties_the_clocks_and_bounds_every_later_frame() -> None:
    s = Session(T, now=0.0)
    s.sent(5, 100.0)  # our seq 5 leaves at our 100.0
    # Their clock is ours minus 60 s; the frame arrives 1 ms later, they answer 10 ms after
    # receiving it (held 10 ms), and the answer takes 1 ms: made at their 40.011.
    assert v(s, 9, 40_011, Echo(1, 5, 10), {1}, 100.012) is Verdict.LIVE
    age = s.judge(9, 40_011, None, {1}, 100.012)[1]
    assert age is not None and abs(age - 0.002) < 1e-6  # its true age plus one delay
    # A later frame of theirs, without a new echo (a one-way cut): judged by the bound.
    assert v(s, 9, 40_311, Echo(1, 5, 310), {1}, 100.313) is Verdict.LIVE
    # The same frame replayed a second later: it was made a second ago.
    assert v(s, 9, 40_311, Echo(1, 5, 310), {1}, 101.313) is Verdict.OLD


def test_the_bound_comes_from_the_newest_echo_and_allows_for_drift() -> None:
    s = Session(T, now=0.0)
    s.sent(1, 10.0)
    s.sent(2, 10.2)
    assert v(s, 3, 10_201, Echo(1, 2, 0), {1}, 10.202) is Verdict.LIVE
    bound = s._bounds[3]
    # An older echo (a frame held back) never replaces the newer bound.
    assert v(s, 3, 10_400, Echo(1, 1, 399), {1}, 10.5) is Verdict.LIVE
    assert s._bounds[3] is bound
    # An hour of one-way cut: their frames still echo seq 2, and their clock (1 ms ahead of
    # ours at the bound) has fallen 3 s behind by now (0.08 %): a fresh frame looks 3 s old.
    later = 10.2 + 3600
    fresh = round((later + 0.001 - 3.0) * 1000)
    assert v(s, 3, fresh, Echo(1, 2, fresh - 10_201), {1}, later) is Verdict.LIVE
    # Drift allows 0.5 s + 0.1 % of 3600 s = 4.1 s; a frame that looks 4.2 s old is not live.
    assert T.deadtime / 2 + DRIFT * 3600 < 4.2
    assert v(s, 3, fresh - 1200, Echo(1, 2, 0), {1}, later) is Verdict.OLD


def test_we_echo_the_newest_frame_heard_and_for_how_long() -> None:
    s = Session(T, now=0.0)
    assert s.echo(1.0) is None
    s.heard(8, 3, 1.0)
    s.heard(7, 99, 1.1)  # an older life's frame (replayed): never echoed over a newer one
    s.heard(8, 2, 1.2)
    assert s.echo(1.25) == Echo(8, 3, 250)
    s.heard(9, 1, 1.3)  # it restarted
    assert s.echo(1.3) == Echo(9, 1, 0)
    assert s.made(1.5) == 1500


# --- two node cores --------------------------------------------------------------------------


def nodes(now: float = 100.0) -> tuple[Node, Node]:
    c = make_cluster()
    n1, n2 = (Node(c, n, KEY, g, LINKS, now) for n, g in (("n1", 10), ("n2", 20)))
    for n in (n1, n2):
        n.probed({g.name: GroupState.STOPPED for g in c.groups})
    return n1, n2


def exchange(a: Node, b: Node, now: float, rounds: int = 3) -> float:
    for _ in range(rounds):
        for x, y in ((a, b), (b, a)):
            y.receive(x.frame(0, now), 0, now + 0.001)
            y.step(now + 0.001)
        now += 0.01
    return now


def test_a_restarted_node_is_not_fooled_by_a_dead_peers_old_frames() -> None:
    """The attack issue 12 saw: n2 dead, n1 restarted, n2's frames of 20 s earlier replayed
    to it at 5 a second. n1 must count n2 dead at initdead and take every group."""
    n1, n2 = nodes()
    now = exchange(n1, n2, 100.0)
    assert n1.membership.view("n2").liveness.value == "up"
    captured = [n2.frame(i % 2, now + i * 0.1) for i in range(95)]  # n2's last 9.5 s
    # n2 dies; twenty seconds later n1 restarts (a new process: a new generation).
    c = n1.cluster
    n1 = Node(c, "n1", KEY, 11, LINKS, now + 20)
    n1.probed({g.name: GroupState.STOPPED for g in c.groups})
    t = now + 20
    for data in captured:
        n1.receive(data, 0, t)
        n1.tick(t)
        n1.step(t)
        assert n1.membership.view("n2").liveness.value != "up"
        t += 0.2
    assert n1.frames.rejected["unverified"] == 95 and n1.frames.received == 0
    assert n1.membership.view("n2").liveness.value == "dead"  # at initdead (3 s)
    assert set(n1.local.values()) == {GroupState.STARTING}, n1.local  # taking both over


def test_frames_held_back_prove_nothing_once_older_than_half_a_deadtime() -> None:
    n1, n2 = nodes()
    now = exchange(n1, n2, 100.0)
    held = n2.frame(0, now)  # a man in the middle keeps this one from n1...
    now = exchange(n1, n2, now + 0.2)
    # ...n2 dies, and the frame comes 0.6 s after it was made: new to n1, but old.
    before = n1.frames.received
    n1.receive(held, 1, now + 0.6)
    assert n1.frames.received == before and n1.frames.rejected["unverified"] == 1


def test_our_own_frames_of_an_earlier_life_are_stale_not_a_second_host() -> None:
    n1, n2 = nodes()
    exchange(n1, n2, 100.0)
    old = [n1.frame(0, 100.0 + i) for i in range(3)]
    c = n1.cluster
    n1 = Node(c, "n1", KEY, 11, LINKS, 200.0)  # restarted
    notes = [n for data in old * 100 for n in n1.receive(data, 0, 200.0)]
    assert n1.frames.rejected["stale_generation"] == 300 and n1.frames.rejected["duplicate_node"] == 0
    assert all(n.level is Level.DEBUG and n.key for n in notes)  # rate-limited by key


def test_a_peer_that_just_started_is_proven_within_a_round_trip() -> None:
    """n2 starts while n1 runs: n2's first frame echoes nothing, n1 answers it at once (not
    at its next keepalive), and n2's reply to that answer proves it."""
    n1, n2 = nodes()
    first = n2.frame(0, 100.0)
    n1.receive(first, 0, 100.001)
    assert n1.membership.view("n2").liveness.value == "unknown"
    step = n1.step(100.001)
    assert step.send  # the answer
    answer = n1.frame(0, 100.001)
    n2.receive(answer, 0, 100.002)
    assert n2.membership.view("n1").liveness.value == "up"
    assert n2.step(100.002).send  # its state changed: it says so at once
    n1.receive(n2.frame(0, 100.002), 0, 100.003)
    assert n1.membership.view("n2").liveness.value == "up"
    # Answers are bounded: a flood of unproven frames makes at most two a keepalive.
    m1, _ = nodes()
    sends = 0
    for i in range(1000):
        m1.receive(n2.frame(0, 100.01), 0, 100.01 + i * 0.0001)
        sends += m1.step(100.01 + i * 0.0001).send
    assert sends <= 2


# --- the simulation with the attacker --------------------------------------------------------

fault = st.one_of(
    st.tuples(st.just("run"), st.floats(0.0, 1.5)),
    st.tuples(st.just("replay"), st.integers(1, 60), st.sampled_from([None, "n1", "n2"])),
    st.tuples(st.just("crash"), st.sampled_from(["n1", "n2"])),
    st.tuples(st.just("boot"), st.sampled_from(["n1", "n2"])),
    st.tuples(st.just("restart"), st.sampled_from(["n1", "n2"])),  # a new process at once
    # The case: one node dies, the other restarts (it remembers no frame of it).
    st.tuples(st.just("die_and_restart"), st.sampled_from(["n1", "n2"])),
    st.tuples(st.just("cut"), st.booleans()),
    st.tuples(st.just("heal")),
    st.tuples(st.sampled_from(["standby", "takeover"]), st.sampled_from(["n1", "n2"])),
)


@SETTINGS
# The witness has just started (it grants nothing yet) when the links are cut and n1
# restarts with g1 running: n1 cannot get its lease back, n2 gets it once the witness may
# grant, and n1 must stop g1 although its initdead has not passed (it did not: a split brain).
@example(seed=0, faults=[("run", 0.0), ("run", 0.0), ("heal",), ("run", 0.0), ("cut", False),
                         ("restart", "n1"), ("run", 1.0), ("run", 1.5)],
         loss=0.0, witness=True, replays=0)
@given(seed=st.integers(0, 2**32), faults=st.lists(fault, max_size=20),
       loss=st.sampled_from([0.0, 0.1, 0.3]), witness=st.booleans(),
       replays=st.integers(0, 30))
def test_the_replay_attacker_never_makes_a_dead_node_alive(seed, faults, loss, witness,
                                                           replays):
    """Frames replayed at any moment, to either node, on any link (lost ones included, so
    also as frames held back): `replays` of them after every fault, and for 3 s at the end.
    No group on both nodes while they talk (with a witness: ever), and no node counts a dead
    peer up past deadtime plus half a deadtime."""
    w = Witness("witness", __import__("ipaddress").ip_address("10.0.0.9")) if witness else None
    sim = Sim(seed, make_cluster(timings=T, witness=w), loss=loss, max_delay=0.02)
    sim.run(1.0)
    for f in faults:
        match f:
            case ("run", seconds):
                sim.run(seconds)
            case ("replay", count, to):
                sim.replay(count, to)
            case ("crash", name) if name in sim.nodes and len(sim.nodes) == 2:
                sim.crash(name)  # and its node reset: it comes back with nothing running
            case ("boot", name) if name not in sim.nodes:
                sim.boot(name)
            case ("restart", name) if name in sim.nodes:
                sim.boot(name, sim.crash(name))
            case ("die_and_restart", name) if len(sim.nodes) == 2:
                sim.crash(name)
                other = "n2" if name == "n1" else "n1"
                sim.boot(other, sim.crash(other))
            case _:
                sim.act(f)
        sim.replay(replays)
        sim.run(0.05)
        assert not sim.violations, (sim.violations, sim.log[-30:])
    for _ in range(15):
        sim.replay(max(replays, 5))
        sim.run(0.2)
        assert not sim.violations, (sim.violations, sim.log[-30:])


def test_replays_after_a_restart_change_nothing_the_peer_did_not_say() -> None:
    """The issue's scenario in the simulation: n2 killed, n1 restarted while the attacker
    replays everything it ever captured to n1, five frames every 0.2 s for 20 s. n1 takes
    both groups at initdead and keeps them; nothing it hears counts n2 up."""
    sim = Sim(4, make_cluster(timings=T), max_delay=0.005)
    sim.run(2.0)
    sim.crash("n2")
    found = sim.crash("n1")
    sim.run(20.0)
    sim.boot("n1", found)
    for _ in range(100):
        sim.replay(5, to="n1")
        sim.run(0.2)
        assert sim.nodes["n1"].membership.view("n2").liveness.value != "up"
    assert sim.runners("g1") == ["n1"] and sim.runners("g2") == ["n1"]
    assert sim.nodes["n1"].frames.received == 0 and not sim.violations
