"""replica/promotion.py and replica/sync.py, sans-IO: the verdicts one by one, then a model
of a primary and a standby (a toy PostgreSQL: a write-ahead log of numbered commits, a
standby that streams a prefix of it, commits acknowledged at once without a synchronous
standby, else once the standby has flushed them) driven by hypothesis through any
interleaving of commits, streaming, lost, duplicated and reordered reports, a standby that
stops or whose daemon restarts, a partition, fencing, and the primary's death or clean
stop. Whenever the standby's node would promote, every acknowledged commit is in its WAL,
in modes "on" and "strict"; in mode "off" what is missing is within the last known lag."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.replica import sync
from vigil.replica.promotion import NO_DATA, Policy, Replica, fresher, may_hold, may_promote

SYS = 7000000000000000001


def rep(role: str = "standby", lsn: int = 100, timeline: int = 1, **kw: object) -> Replica:
    return Replica(role, SYS, timeline, lsn, **kw)  # type: ignore[arg-type]


ON, OFF = Policy("on"), Policy("off", max_lag=50)


# --- the verdicts ------------------------------------------------------------------------


def test_a_synchronous_standby_caught_up_to_its_contract_is_promoted() -> None:
    primary = rep("primary", 500, sync_with="b", sync_from=300, sync_epoch=(1, 2))
    assert may_promote("b", rep(lsn=300), primary, False, ON)
    assert not may_promote("b", rep(lsn=299), primary, False, ON)  # short of sync_from
    assert "not the synchronous standby" in may_promote("c", rep(lsn=900), primary, False,
                                                        ON).why
    released = rep(lsn=500, released=(1, 2))
    assert "released" in may_promote("b", released, primary, False, ON).why
    assert not may_promote("b", rep(lsn=500), replace(primary, sync_with=None), False, ON)


def test_while_the_peer_lives_it_must_be_demoted_and_caught_up() -> None:
    assert "still primary" in may_promote("b", rep(lsn=900), rep("primary"), True, ON).why
    stopped = rep("stopped", 400)
    assert may_promote("b", rep(lsn=400), stopped, True, ON)
    v = may_promote("b", rep(lsn=390), stopped, True, ON)
    assert not v and "10 bytes behind" in v.why and "waiting to catch up" in v.why
    # forced: the data check yields, the peer still primary does not
    assert may_promote("b", rep(lsn=390), stopped, True, ON, force=True)
    assert not may_promote("b", rep(lsn=900), rep("primary"), True, ON, force=True)


def test_asynchronous_mode_promotes_within_the_lag_bound() -> None:
    primary = rep("primary", 500)
    assert may_promote("b", rep(lsn=450), primary, False, OFF)
    v = may_promote("b", rep(lsn=449), primary, False, OFF)
    assert not v and "51 bytes" in v.why and "max_lag (50)" in v.why
    assert may_promote("b", rep(lsn=449), primary, False, OFF, force=True).why.startswith(
        "forced by the operator")
    assert not may_promote("b", rep(lsn=500, timeline=1), rep("primary", 500, timeline=2),
                           False, OFF)


def test_doubt_identity_and_failure_refuse() -> None:
    assert "nothing heard" in may_promote("b", rep(), None, False, ON).why
    assert may_promote("b", rep(), None, False, ON, force=True)
    other = Replica("stopped", SYS + 1, 1, 10)
    assert "not a replica" in may_promote("b", rep(), other, False, ON, force=True).why
    assert not may_promote("b", rep("failed"), rep("stopped"), False, ON, force=True)
    assert not may_promote("b", None, rep("stopped"), False, ON, force=True)
    assert may_promote("b", rep("primary"), rep("primary"), True, ON)  # already: nothing to do


def test_a_node_without_data_is_never_promoted_over_one_with_data() -> None:
    empty = Replica("stopped", NO_DATA, 0, 0)
    v = may_promote("b", empty, rep("stopped"), False, ON, force=True)
    assert not v and "no data yet" in v.why
    assert not may_hold("b", empty, rep("primary"), True, ON)
    assert may_promote("b", rep(), empty, True, ON).why == "the peer has no data"
    assert may_promote("b", empty, empty, True, ON).why.startswith("a new cluster")


def test_holding_while_the_peer_lives_asks_only_who_the_data_is() -> None:
    primary = rep("primary", 500)
    assert may_hold("b", rep(lsn=1), primary, True, ON)  # the start waits to catch up
    assert not may_promote("b", rep(lsn=1), primary, True, ON)
    assert not may_hold("b", None, primary, True, ON)
    assert not may_hold("b", rep("failed"), primary, True, ON)
    assert not may_hold("b", Replica("standby", SYS + 1, 1, 900), primary, True, ON)
    # a stopped instance behind the peer's never catches up by itself
    v = may_hold("b", rep("stopped", 400), rep("primary", 500), True, ON)
    assert not v and "not following it" in v.why
    assert not may_hold("b", rep("stopped", 900, timeline=1), rep("stopped", 5, timeline=2),
                        True, ON)
    assert may_hold("b", rep("stopped", 500), rep("standby", 400), True, ON)
    assert may_hold("b", rep("stopped", 300), rep("standby", 400), True, ON), \
        "a crashed primary's standby: the restart in place"
    # once the peer is dead, holding is promoting
    assert not may_hold("b", rep(lsn=1), primary, False, ON)
    assert may_hold("b", rep(lsn=450), primary, False, OFF)


def test_the_fresher_replica_is_preferred() -> None:
    assert fresher(rep(lsn=5, timeline=2), rep(lsn=900)) == 1
    assert fresher(rep(lsn=5), rep(lsn=6)) == -1
    assert fresher(rep(lsn=5), rep(lsn=5)) == 0
    assert fresher(rep(lsn=5), Replica("standby", SYS + 1, 1, 1)) == 0
    assert fresher(rep("failed", 900), rep(lsn=1)) == 0
    assert fresher(None, rep()) == 0


def test_the_contract_leaves_an_epoch_only_with_consent_or_proof() -> None:
    c = sync.Contract()
    step = sync.plan(c, "on", "b", True, None, False)
    assert step == sync.SetNames("b")
    c = sync.applied(c, 3, "b", 120)
    assert (c.sync_with, c.sync_from, c.epoch) == ("b", 120, (3, 1))
    # the standby stops streaming: keep waiting, ask for a release
    c = sync.plan(c, "on", "b", False, rep(), False)
    assert isinstance(c, sync.Contract) and c.asking and c.sync_with == "b"
    assert sync.report(c, rep("primary")).release_ask == (3, 1)
    # released: stop waiting; or proof the peer cannot promote
    assert sync.plan(c, "on", "b", False, rep(released=(3, 1)), False) == sync.SetNames("")
    assert sync.plan(c, "on", "b", False, None, True) == sync.SetNames("")
    strict = sync.plan(c, "strict", "b", False, rep(released=(3, 1)), True)  # never
    assert isinstance(strict, sync.Contract) and strict.sync_with == "b" and not strict.asking
    assert sync.plan(c, "off", "b", True, None, False) == sync.SetNames("")
    # released, but streaming again: a new epoch, so that the standby can be promoted again
    assert sync.plan(c, "on", "b", True, rep(released=(3, 1)), False) == sync.SetNames("b")
    assert sync.applied(c, 3, "b", 130).epoch == (3, 2)
    assert sync.applied(c, 4, "", 130) == sync.Contract(None, 0, (4, 1), False)


def test_a_standby_releases_only_what_it_is_asked() -> None:
    ask = rep("primary", sync_with="b", sync_epoch=(2, 5), release_ask=(2, 5))
    assert sync.released((0, 0), ask, "b") == (2, 5)
    assert sync.released((3, 1), ask, "b") == (3, 1)  # never backwards
    assert sync.released((0, 0), replace(ask, release_ask=None), "b") == (0, 0)
    assert sync.released((0, 0), ask, "c") == (0, 0)
    assert sync.released((0, 0), None, "b") == (0, 0)


# --- the model -----------------------------------------------------------------------------


@dataclass
class World:
    mode: str
    generation: int = 1
    wal: list[int] = field(default_factory=list)  # the primary's WAL: commit numbers
    standby_wal: list[int] = field(default_factory=list)  # a prefix of it
    standby_up: bool = True  # its postgres streams (when the link lets it)
    cut: bool = False  # the nodes cannot reach each other (heartbeats nor WAL)
    fenced: bool = False  # the primary fenced the standby's node: it never promotes
    names: str = ""  # synchronous_standby_names, as applied
    contract: sync.Contract = field(default_factory=sync.Contract)
    acked: set[int] = field(default_factory=set)
    to_standby: list[Replica] = field(default_factory=list)  # reports in flight
    to_primary: list[Replica] = field(default_factory=list)
    heard_by_standby: Replica | None = None  # the primary's latest report it holds
    heard_by_primary: Replica | None = None
    released: tuple[int, int] = (0, 0)

    def streaming(self) -> bool:
        return self.standby_up and not self.cut and not self.fenced

    def primary_report(self) -> Replica:
        return sync.report(self.contract, Replica("primary", SYS, 1, len(self.wal)))

    def standby_report(self) -> Replica:
        return Replica("standby" if self.standby_up else "stopped", SYS, 1,
                       len(self.standby_wal), released=self.released)

    def ack(self) -> None:
        for i, n in enumerate(self.wal):
            if n not in self.acked and (self.names == "" or len(self.standby_wal) > i):
                self.acked.add(n)


OPS = st.lists(st.one_of(
    st.tuples(st.just("commit"), st.integers(1, 3)),
    st.tuples(st.just("stream"), st.integers(0, 4)),
    st.just(("primary_daemon",)), st.just(("primary_daemon",)),
    st.just(("standby_daemon",)), st.just(("standby_daemon",)),
    st.tuples(st.just("deliver"), st.booleans(), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("deliver"), st.booleans(), st.just(9), st.just(False)),  # the newest
    st.tuples(st.just("standby_pg"), st.booleans()),
    st.tuples(st.just("cut"), st.booleans()),
    st.just(("standby_restart",)),
    st.just(("fence",)),
    st.just(("exchange",)),  # both daemons run and hear each other's newest report
), max_size=80)


EXCHANGE = [("primary_daemon",), ("deliver", True, 9, False), ("standby_daemon",),
            ("deliver", False, 9, False), ("primary_daemon",), ("deliver", True, 9, False)]


def run(world: World, ops: list[tuple[object, ...]]) -> None:
    for op in ops:
        kind = op[0]
        if kind == "exchange":  # a round trip at once: what takes a dozen steps at random
            run(world, EXCHANGE)
            continue
        if kind == "commit":
            world.wal.extend(range(len(world.wal) + 1, len(world.wal) + 1 + int(op[1])))  # type: ignore[call-overload]
        elif kind == "stream" and world.streaming():
            world.standby_wal = world.wal[:len(world.standby_wal) + int(op[1])]  # type: ignore[call-overload]
        elif kind == "primary_daemon":
            step = sync.plan(world.contract, world.mode, "b", world.streaming(),  # type: ignore[arg-type]
                             world.heard_by_primary, world.fenced)
            if isinstance(step, sync.SetNames):
                world.names = step.name
                world.ack()  # waiting commits are released the moment it is ""
                world.contract = sync.applied(world.contract, world.generation, step.name,
                                              len(world.wal))
            else:
                world.contract = step
            world.to_standby.append(world.primary_report())
        elif kind == "standby_daemon" and not world.fenced:
            world.released = sync.released(world.released, world.heard_by_standby, "b")
            world.to_primary.append(world.standby_report())
        elif kind == "deliver" and not world.cut:
            queue = world.to_standby if op[1] else world.to_primary
            if queue:
                msg = queue[min(int(op[2]), len(queue) - 1)]  # type: ignore[call-overload]
                if not op[3]:
                    queue.remove(msg)  # else: delivered, and a copy may come again
                if op[1]:
                    world.heard_by_standby = msg  # the latest received; may be an old one
                else:
                    world.heard_by_primary = msg
        elif kind == "standby_pg":
            world.standby_up = bool(op[1])
        elif kind == "cut":
            world.cut = bool(op[1])
        elif kind == "standby_restart":
            world.heard_by_standby, world.released = None, (0, 0)
        elif kind == "fence" and world.names == "b" and world.cut:
            world.fenced = True  # the primary's side fenced the standby's node
        world.ack()


@pytest.mark.parametrize("mode", ["on", "strict", "off"])
@settings(max_examples=400, deadline=None)
@given(ops=OPS)
def test_no_acknowledged_commit_is_lost_when_the_standby_promotes(mode: str,
                                                                 ops: list[tuple[object, ...]]
                                                                 ) -> None:
    world = World(mode)
    run(world, ops)
    if world.fenced:
        return  # the standby's node is off: it promotes nothing
    # The primary dies now (crash): the standby's node decides on what it last heard.
    mine = world.standby_report()
    heard = world.heard_by_standby
    verdict = may_promote("b", mine, heard, False, Policy(mode, max_lag=3))  # type: ignore[arg-type]
    if not verdict:
        return
    lost = world.acked - set(world.standby_wal)
    if mode == "off":
        assert heard is not None
        # what is lost was committed after the last report, or within the lag it showed
        assert all(n > heard.lsn - 3 for n in lost), (lost, heard)
    else:
        assert not lost, (lost, verdict, heard, world.contract)


@pytest.mark.parametrize("mode", ["on", "off"])
@settings(max_examples=200, deadline=None)
@given(ops=OPS)
def test_a_clean_handover_loses_nothing(mode: str, ops: list[tuple[object, ...]]) -> None:
    """The primary stops cleanly (a switchover): it sends its standby all its WAL when the
    standby streams, and reports itself stopped at its end; the standby promotes only once
    it holds all of it."""
    world = World(mode)
    run(world, ops)
    if world.streaming():
        world.standby_wal = list(world.wal)
    stopped = Replica("stopped", SYS, 1, len(world.wal))
    verdict = may_promote("b", world.standby_report(), stopped, True, Policy(mode))  # type: ignore[arg-type]
    assert bool(verdict) == (len(world.standby_wal) == len(world.wal))
    if verdict:
        assert world.acked <= set(world.standby_wal)


def test_the_model_promotes_when_it_is_safe() -> None:
    """The model is not vacuous: a streaming synchronous standby that heard the primary's
    contract is promoted, and a release is asked, given and honoured."""
    world = World("on")
    run(world, [("primary_daemon",), ("deliver", True, 0, False), ("commit", 3),
                ("stream", 3), ("primary_daemon",), ("deliver", True, 0, False)])
    assert world.names == "b" and world.acked == {1, 2, 3}
    assert may_promote("b", world.standby_report(), world.heard_by_standby, False, ON)
    run(world, [("standby_pg", False), ("commit", 1), ("primary_daemon",)])
    assert 4 not in world.acked and world.contract.asking  # writes wait
    run(world, [("deliver", True, 1, False), ("standby_daemon",),
                ("deliver", False, 0, False), ("primary_daemon",)])
    assert world.names == "" and 4 in world.acked  # consent given: writes go on
    assert not may_promote("b", world.standby_report(), world.heard_by_standby, False, ON)
    run(world, [("commit", 1), ("primary_daemon",), ("deliver", True, 9, False)])
    assert world.heard_by_standby is not None and world.heard_by_standby.sync_with is None
    assert 5 in world.acked and not may_promote("b", world.standby_report(),
                                                world.heard_by_standby, False, ON)
