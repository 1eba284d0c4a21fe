"""vigil.wire.framesize: a configuration whose frames could not be sent is refused before start,
with the field at fault and the real limits (issue 12, part 5.3)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from tests.unit.sim import make_cluster
from vigil.errors import ConfigProblem
from vigil.wire.framesize import _encoded, _worst_frame_size, _worst_frames, frame_problem
from vigil.model import Cluster, Node, Witness
from vigil.wire import frame as wire


def problem(c: Cluster) -> ConfigProblem:
    found = frame_problem(c)
    assert found is not None
    assert found.file == c.source
    return found


def most_groups_that_fit(c: Cluster | None = None) -> int:
    """Found the slow way: the largest n for which the first n groups pass (of make_cluster's
    groups when c is None)."""
    n = 0
    while frame_problem(make_cluster(groups=n + 1) if c is None else
                        dataclasses.replace(c, groups=c.groups[:n + 1])) is None:
        n += 1
        assert c is None or n < len(c.groups), "they all fit"
    return n


def test_too_many_groups_say_how_large_the_frame_is_and_how_many_fit() -> None:
    fit = most_groups_that_fit()
    assert 10 < fit < 100
    c = make_cluster(groups=10_000)
    p = problem(c)
    assert p.key == "group"
    assert "format requires" not in p.message  # struct's words, not ours
    size = _worst_frame_size(c)
    assert f"10000 groups make a heartbeat of {size} bytes" in p.message, p.message
    assert f"at most {wire.MAX_FRAME} bytes" in p.message, p.message
    assert f"the first {fit} groups fit (up to g{fit})" in p.message, p.message
    # Just past the limit: the same sentence, with the same count that fits.
    p = problem(make_cluster(groups=fit + 1))
    assert f"{fit + 1} groups make a heartbeat" in p.message
    assert f"the first {fit} groups fit" in p.message


def test_a_witness_frame_that_does_not_fit_is_named() -> None:
    """Long group names: a witness reply carries each name twice, so it overflows first."""
    w = Witness(ipaddress.ip_address("10.0.0.9"), 6940, 2.0, "witness")
    c = make_cluster(groups=11)
    c = dataclasses.replace(c, groups=tuple(dataclasses.replace(g, name=chr(97 + i) * 63)
                                            for i, g in enumerate(c.groups)))
    assert frame_problem(c) is None
    c = dataclasses.replace(c, witness=w)
    p = problem(c)
    assert p.key == "group" and "11 groups make a witness" in p.message, p.message
    fit = most_groups_that_fit(c)
    assert f"the first {fit} groups fit (up to {c.groups[fit - 1].name})" in p.message, p


@pytest.mark.parametrize("name", ["c" * 300, "é" * 33], ids=["300 bytes", "33 characters, 66 bytes"])
def test_a_cluster_name_longer_than_a_frame_carries_is_named(name: str) -> None:
    c = dataclasses.replace(make_cluster(groups=1), name=name)
    p = problem(c)
    size = len(name.encode())
    assert p.key == "cluster.name", p
    assert f"{size} bytes" in p.message and f"at most {wire.MAX_NAME}" in p.message, p.message
    assert "groups" not in p.message, p.message


def test_a_node_name_longer_than_a_frame_carries_is_named() -> None:
    c = make_cluster(groups=1)
    c = dataclasses.replace(c, nodes=(c.nodes[0], Node("n" * 70, c.nodes[1].addresses)))
    p = problem(c)
    assert p.key == "node" and "70 bytes" in p.message and "'nnnnnnnnnn" in p.message, p


def test_names_at_the_limit_fit() -> None:
    c = make_cluster(groups=2)
    c = dataclasses.replace(c, name="c" * wire.MAX_NAME,
                            nodes=(Node("a" * wire.MAX_NAME, c.nodes[0].addresses), c.nodes[1]))
    c = dataclasses.replace(c, groups=tuple(dataclasses.replace(g, home=c.nodes[0].name)
                                            for g in c.groups))
    assert frame_problem(c) is None


@pytest.mark.parametrize("groups", [1, 5, 20])
def test_the_computed_size_is_the_encoded_size(groups: int) -> None:
    w = Witness(ipaddress.ip_address("10.0.0.9"), 6940, 2.0, "witness")
    c = dataclasses.replace(make_cluster(groups=groups), witness=w)
    for kind, sender, payload in _worst_frames(c).values():
        assert len(_encoded(c, kind, sender, payload)) <= wire.MAX_FRAME
    kind, sender, payload = _worst_frames(c)["heartbeat"]
    assert _worst_frame_size(c) == len(_encoded(c, kind, sender, payload))
