"""The ownership seam (core/ownership.py): its gossip backend alone, and two of them over a
network that delays, reorders, duplicates and drops their records."""

from __future__ import annotations

from hypothesis import given, strategies as st

from vigil.core.ownership import Gossip, Ownership
from vigil.wire.messages import Assignment, GroupReport, GroupState

GROUPS = ("g1", "g2")
NODES = ("n1", "n2")


def records(o: Ownership) -> tuple[GroupReport, ...]:
    """What a heartbeat of `o`'s node carries of it."""
    return tuple(GroupReport(g, GroupState.STOPPED, a, True) for g, a in o.assignments.items())


def test_each_group_starts_on_its_home_and_only_a_change_counts() -> None:
    o = Gossip([("g1", "n1"), ("g2", "n2")])
    assert o.assignments == {"g1": Assignment(0, "", "n1"), "g2": Assignment(0, "", "n2")}
    assert not o.assign({"g1": Assignment(0, "", "n1")})
    assert o.assign({"g1": Assignment(1, "n2", "n2")})
    assert o.assignments["g1"] == Assignment(1, "n2", "n2")


def test_the_larger_record_wins_and_unknown_groups_are_ignored() -> None:
    o = Gossip([("g1", "n1")])
    newer = Assignment(3, "n2", "n2")
    assert o.heard([GroupReport("g1", GroupState.RUNNING, newer, True),
                    GroupReport("gone", GroupState.STOPPED, Assignment(9, "n2", "n2"), True)])
    assert o.assignments == {"g1": newer}
    assert not o.heard([GroupReport("g1", GroupState.RUNNING, Assignment(2, "n1", "n1"), True)])
    assert o.assignments == {"g1": newer}, "an older record changes nothing"


def test_a_reload_adds_a_group_at_home_and_forgets_one() -> None:
    o = Gossip([("g1", "n1")])
    o.add("g2", "n2")
    assert o.assignments["g2"] == Assignment(0, "", "n2")
    o.forget("g1")
    o.forget("never")
    assert set(o.assignments) == {"g2"}


# A step: a node decides a new owner for a group, or sends its records (to be delivered
# later: `deliver` picks one in flight), or the network duplicates or loses one in flight.
_steps = st.lists(st.one_of(
    st.tuples(st.just("decide"), st.sampled_from(NODES), st.sampled_from(GROUPS),
              st.sampled_from(NODES)),
    st.tuples(st.just("send"), st.sampled_from(NODES)),
    st.tuples(st.just("deliver"), st.integers(0, 20)),
    st.tuples(st.just("dup"), st.integers(0, 20)),
    st.tuples(st.just("lose"), st.integers(0, 20)),
), max_size=60)


@given(_steps)
def test_two_nodes_converge_whatever_the_network_does_and_never_go_back(steps: list[
        tuple[object, ...]]) -> None:
    nodes = {n: Gossip([("g1", "n1"), ("g2", "n2")]) for n in NODES}
    flight: list[tuple[str, tuple[GroupReport, ...]]] = []  # (to, records)
    for step in steps:
        before = {n: dict(o.assignments) for n, o in nodes.items()}
        if step[0] == "decide":
            _, who, g, owner = step
            assert isinstance(who, str) and isinstance(g, str) and isinstance(owner, str)
            a = nodes[who].assignments[g]
            # as the policy does: one epoch up, made by this node
            assert nodes[who].assign({g: Assignment(a.epoch + 1, who, owner)})
        elif step[0] == "send":
            sender = step[1]
            assert isinstance(sender, str)
            flight.append((NODES[1 - NODES.index(sender)], records(nodes[sender])))
        elif flight:
            i = step[1]
            assert isinstance(i, int)
            i %= len(flight)
            if step[0] == "deliver":
                to, recs = flight.pop(i)
                nodes[to].heard(recs)
            elif step[0] == "dup":
                flight.append(flight[i])
            else:
                flight.pop(i)
        for n, o in nodes.items():  # an assignment only ever grows
            assert all(o.assignments[g] >= before[n][g] for g in GROUPS)
    # Once each has heard the other's latest records, they agree on every group.
    nodes["n2"].heard(records(nodes["n1"]))
    nodes["n1"].heard(records(nodes["n2"]))
    assert nodes["n1"].assignments == nodes["n2"].assignments
