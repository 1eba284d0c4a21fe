"""Ping nodes: the ICMP packets, and ipfail's rule in the node core."""

from __future__ import annotations

import dataclasses
import ipaddress
import struct

from tests.unit.sim import Sim, make_cluster
from vigil.daemon.ping import ECHO_REPLY, Pinger, checksum, echo_request, parse_reply
from vigil.wire.messages import GroupState, Heartbeat, NodeStatus, parse, serialize


def test_echo_request_is_a_valid_icmp_message() -> None:
    pkt = echo_request(0x1234, 7)
    kind, code, _sum, ident, seq = struct.unpack_from("!BBHHH", pkt)
    assert (kind, code, ident, seq) == (8, 0, 0x1234, 7)
    assert checksum(pkt) == 0, "a correct checksum sums to zero over the whole message"


def test_only_our_echo_replies_count() -> None:
    ip = bytes([0x45]) + bytes(19)
    reply = struct.pack("!BBHHH", ECHO_REPLY, 0, 0, 0x1234, 1) + b"x"
    assert parse_reply(ip + reply, 0x1234)
    assert not parse_reply(ip + reply, 0x9999), "another process's ping"
    assert not parse_reply(ip + struct.pack("!BBHHH", 3, 1, 0, 0, 0), 0x1234)
    assert not parse_reply(ip[:10], 0x1234)


def test_count_is_unknown_until_every_node_answered_or_deadping_passed() -> None:
    p = Pinger([ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")], 0.1, 1.0)
    t0 = p.started
    assert p.count(t0 + 0.5) is None
    p.last_reply["10.0.0.1"] = t0 + 0.1
    assert p.count(t0 + 0.5) is None
    p.last_reply["10.0.0.2"] = t0 + 0.2
    assert p.count(t0 + 0.5) == 2
    assert p.count(t0 + 1.15) == 1  # 10.0.0.1 silent for more than deadping
    assert p.count(t0 + 5) == 0


def test_ping_count_travels_in_heartbeats() -> None:
    hb = Heartbeat(NodeStatus.UP, (), 3)
    assert parse(serialize(hb)) == hb
    assert parse(serialize(Heartbeat(NodeStatus.UP, ()))) == Heartbeat(NodeStatus.UP, ())
    assert parse(b'{"s":"up","g":[],"t":0,"p":-1}') is None
    assert parse(b'{"s":"up","g":[],"t":0,"p":true}') is None


def test_the_node_that_reaches_fewer_ping_nodes_hands_its_groups_over() -> None:
    cluster = dataclasses.replace(make_cluster(),
                                  ping=(ipaddress.ip_address("10.0.9.1"),))
    sim = Sim(3, cluster, max_delay=0.002, action_time=0.003)
    for n in ("n1", "n2"):
        sim.nodes[n].set_ping(1)
    sim.run(1.0)
    assert sim.runners("g1") == ["n1"] and sim.runners("g2") == ["n2"]
    sim.nodes["n1"].set_ping(0)
    sim._step("n1")
    sim.run(0.5)
    assert sim.runners("g1") == ["n2"] and sim.runners("g2") == ["n2"]
    assert not sim.nodes["n1"].eligible["g1"]
    sim.nodes["n1"].set_ping(1)  # n1 reaches its router again: with auto_failback, home
    sim._step("n1")
    sim.run(0.5)
    assert sim.runners("g1") == ["n1"] and sim.runners("g2") == ["n2"]
    # Both lose it: equal, so neither is worse; nothing is handed away.
    for n in ("n1", "n2"):
        sim.nodes[n].set_ping(0)
        sim._step(n)
    sim.run(0.5)
    assert sim.runners("g1") == ["n1"] and sim.runners("g2") == ["n2"]
    assert not sim.violations
    assert all(s is GroupState.STOPPED for s in (sim.nodes["n1"].local["g2"],
                                                 sim.nodes["n2"].local["g1"]))
