"""A promotable group in the node (core/promotable.py, core/eligibility.py's Why.DATA):
two real Nodes over a perfect network. The data decides who may hold the group: nothing
starts before each node has examined its instance; a dead primary's synchronous standby
takes over, one that released the contract or lags in asynchronous mode does not."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.unit.sim import KEY, LINKS, make_cluster
from vigil.core.eligibility import Why
from vigil.core.node import Node
from vigil.model import Cluster, Group
from vigil.policy import Start, Stop
from vigil.replica.model import PostgresqlResource
from vigil.replica.promotion import Replica
from vigil.wire.messages import GroupState, parse

SYS = 6100000000000000042


def cluster(mode: str = "on") -> Cluster:
    base = make_cluster(groups=1)
    pg = PostgresqlResource(Path("/srv/pg"), synchronous=mode, max_lag=50)  # type: ignore[arg-type]
    return replace(base, groups=(Group("db", "n1", (pg,), promotable=True),))


class Pair:
    def __init__(self, c: Cluster) -> None:
        self.now = 100.0
        self.nodes = {n: Node(c, n, KEY, 1 + i, LINKS, self.now) for i, n in
                      enumerate(("n1", "n2"))}
        for n in self.nodes.values():
            n.probed({"db": GroupState.STOPPED})
        self.alive = {"n1", "n2"}
        self.started: dict[str, int] = {"n1": 0, "n2": 0}

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += 0.1
            for name in sorted(self.alive):
                node, other = self.nodes[name], "n2" if name == "n1" else "n1"
                node.tick(self.now)
                for link in range(len(LINKS)):
                    data = node.frame(link, self.now)  # sent whether anyone hears it or not
                    if other in self.alive:
                        self.nodes[other].receive(data, link, self.now)
            for name in sorted(self.alive):
                node = self.nodes[name]
                for a in node.step(self.now).actions:
                    if isinstance(a, Start):
                        self.started[name] += 1
                        node.finished(a.group, GroupState.RUNNING)
                    elif isinstance(a, Stop):
                        node.finished(a.group, GroupState.STOPPED)


def primary(**kw: object) -> Replica:
    return Replica("primary", SYS, 1, 500, **kw)  # type: ignore[arg-type]


def standby(lsn: int = 400, **kw: object) -> Replica:
    return Replica("standby", SYS, 1, lsn, **kw)  # type: ignore[arg-type]


def test_nothing_starts_before_the_instances_are_examined_then_home_does() -> None:
    p = Pair(cluster())
    p.run(4.0)
    assert p.started == {"n1": 0, "n2": 0}
    assert not p.nodes["n1"].eligible["db"]
    p.nodes["n1"].set_replica("db", Replica("stopped", SYS, 1, 500))
    p.nodes["n2"].set_replica("db", standby())
    p.run(1.0)
    assert p.started == {"n1": 1, "n2": 0}
    # the heartbeat carries the instance
    hb = parse(p.nodes["n1"].sent_report)
    assert hb is not None and hb.replica("db") == Replica("stopped", SYS, 1, 500)


def _running_pair(mode: str, mine: Replica) -> Pair:
    p = Pair(cluster(mode))
    p.nodes["n1"].set_replica("db", mine)
    p.nodes["n2"].set_replica("db", standby())
    p.run(4.0)
    assert p.started == {"n1": 1, "n2": 0} and p.nodes["n1"].local["db"] is GroupState.RUNNING
    return p


def test_the_synchronous_standby_takes_over_a_dead_primary() -> None:
    p = _running_pair("on", primary(sync_with="n2", sync_from=300, sync_epoch=(2, 1)))
    p.alive.discard("n1")
    p.run(2.0)
    assert p.started["n2"] == 1


def test_a_released_or_foreign_standby_does_not() -> None:
    p = _running_pair("on", primary(sync_with="n2", sync_from=300, sync_epoch=(2, 1)))
    p.nodes["n2"].set_replica("db", standby(released=(2, 1)))
    p.alive.discard("n1")
    p.run(2.0)
    n2 = p.nodes["n2"]
    assert p.started["n2"] == 0 and not n2.eligible["db"]
    assert "released the synchronous contract" in n2.promotable.why_not["db"]
    assert Why.DATA.value == "its data may not be promoted here"
    p2 = _running_pair("on", primary(sync_with="n2", sync_from=450, sync_epoch=(2, 1)))
    p2.alive.discard("n1")
    p2.run(2.0)
    assert p2.started["n2"] == 0, "short of where the contract began"


def test_asynchronous_mode_takes_over_within_max_lag_only() -> None:
    p = _running_pair("off", primary())
    p.nodes["n2"].set_replica("db", standby(lsn=449))
    p.alive.discard("n1")
    p.run(2.0)
    assert p.started["n2"] == 0 and "exceeds max_lag" in p.nodes["n2"].promotable.why_not["db"]
    p.nodes["n2"].set_replica("db", standby(lsn=450))
    p.run(0.5)
    assert p.started["n2"] == 1


def test_a_move_sticks_when_the_old_primary_comes_back_as_a_standby() -> None:
    """auto_failback is on (make_cluster's default), and a promotable group still stays
    with its primary: moving it back is a switchover's write outage (policy.failback)."""
    p = _running_pair("on", primary(sync_with="n2", sync_from=300, sync_epoch=(2, 1)))
    n1, n2 = p.nodes["n1"], p.nodes["n2"]
    assert n1.cluster.auto_failback
    n1.request("move", group="db", to="n2")
    n1.set_replica("db", Replica("stopped", SYS, 1, 500))
    n2.set_replica("db", standby(lsn=500))
    p.run(1.0)
    assert p.started["n2"] == 1 and n2.local["db"] is GroupState.RUNNING
    n2.set_replica("db", Replica("primary", SYS, 2, 600))
    p.run(0.5)
    assert not n1.eligible["db"], "stopped behind a live primary: it must follow first"
    n1.set_replica("db", Replica("standby", SYS, 2, 600))
    p.run(2.0)
    assert n1.eligible["db"] and p.started == {"n1": 1, "n2": 1}
    assert n2.local["db"] is GroupState.RUNNING


def test_an_operator_forces_a_lagging_standby_only_while_the_primary_is_dead() -> None:
    """`vigil switchover db --force` on n2 (Node.force_promotion): refused while n1 lives,
    for a group that is not promotable, or against an identity check; once n1 is dead it
    lifts max_lag for the next promotion, which then happens, logged; the promotion ends
    it, and n1's return would have too."""
    p = _running_pair("off", primary())
    n2 = p.nodes["n2"]
    n2.set_replica("db", standby(lsn=300))  # 200 bytes behind: past max_lag (50)
    error, _, notes = n2.force_promotion("db")
    assert error is not None and "n1 is alive" in error and notes == []
    assert n2.force_promotion("web")[0] == "group web is not promotable"
    p.alive.discard("n1")
    p.run(2.0)
    assert p.started["n2"] == 0 and "exceeds max_lag" in n2.promotable.why_not["db"]
    n2.set_replica("db", Replica("standby", SYS + 1, 1, 300))  # another cluster's data
    error, _, _ = n2.force_promotion("db")
    assert error is not None and error.startswith("cannot be forced: this node's data")
    assert not n2.promotable.forced
    n2.set_replica("db", standby(lsn=300))
    error, why, notes = n2.force_promotion("db")
    assert error is None and "200 bytes, exceeds max_lag (50)" in why
    assert notes[0].level.name == "WARNING" and "an operator forced" in notes[0].text
    assert n2.promotable.ready("db").ok
    assert "forced by the operator" in n2.promotable.ready("db").why
    p.run(2.0)
    assert p.started["n2"] == 1 and n2.local["db"] is GroupState.RUNNING
    n2.set_replica("db", Replica("primary", SYS, 2, 300))
    assert not n2.promotable.forced, "the promotion used it up"
    assert n2.force_promotion("db")[0] == "this node's instance of db is already primary"


def test_a_force_ends_when_the_peer_returns() -> None:
    p = _running_pair("off", primary())
    n2 = p.nodes["n2"]
    n2.set_replica("db", standby(lsn=300))
    p.alive.discard("n1")
    p.run(2.0)
    n2.promotable.forced.add("db")  # as force_promotion leaves it, before the takeover
    assert n2.promotable.ready("db").ok
    p.nodes["n1"].set_replica("db", standby(lsn=500))  # back, as a fresher standby
    p.alive.add("n1")
    p.run(1.0)
    assert not n2.other.dead()
    v = n2.promotable.ready("db")
    assert not v.ok and "200 bytes behind" in v.why, "the peer is back: no force now"
