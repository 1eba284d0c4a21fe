"""The balancer's data plane on the real kernel: nft.py's rulesets applied with apply.py in a
director namespace between a client and three real servers, each a real HTTP/1.1 server
that says who it is (vigil.lab.web). NAT as LVS's masq: the real servers' gateway is the director.

    client (link 0) -- director (link 0 | link 1) -- r1, r2, r3 (link 1)
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import sys
import textwrap
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.balancer import apply, counters, nft
from vigil.balancer.model import Endpoint, RealServer, VirtualServer
from vigil.lab.netns import Lab

REALS = ("r1", "r2", "r3")

# Run in the client namespace: N requests, each on a new connection, or on one kept-alive
# connection; prints {"who": count} and the number of failures as JSON.
CLIENT = textwrap.dedent("""
    import http.client, json, sys, collections
    host, n, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "keep"
    seen, failed = collections.Counter(), 0
    conn = None
    for _ in range(n):
        try:
            if conn is None or not keep:
                conn = http.client.HTTPConnection(host, 80, timeout=2)
            conn.request("GET", "/who")
            seen[conn.getresponse().read().decode().strip()] += 1
            if not keep:
                conn.close()
        except OSError:
            failed += 1
            conn = None
    print(json.dumps({"seen": seen, "failed": failed}))
""")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.create(["client", "director", *REALS], links=2) as lab:
        lab.run("client", ["ip", "link", "set", lab.ifname(1), "down"])
        lab.run("director", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for r in REALS:
            lab.run(r, ["ip", "link", "set", lab.ifname(0), "down"])
            lab.run(r, ["ip", "route", "add", "default", "via", lab.address("director", 1)])
            lab.popen(r, [sys.executable, "-m", "vigil.lab.web", "--name", r, "--bind",
                          lab.address(r, 1), "--keepalive"])
            lab.wait_listening(r, 80)
        yield lab
        apply.run(nft.remove(), _prefix(lab))


def _prefix(lab: Lab) -> list[str]:
    return ["ip", "netns", "exec", lab.ns("director")]


def _endpoint(lab: Lab, host: str, link: int) -> Endpoint:
    return Endpoint(ipaddress.ip_address(lab.address(host, link)), 80)


def _service(lab: Lab, weights: dict[str, int], **kw: object) -> nft.Service:
    reals = tuple(RealServer(_endpoint(lab, r, 1), weight=1) for r in REALS)
    vs = VirtualServer("web", "web", reals, endpoint=_endpoint(lab, "director", 0), **kw)
    ids = {r.endpoint: i + 1 for i, r in enumerate(reals)}
    active = {_endpoint(lab, r, 1): w for r, w in weights.items() if w > 0}
    return nft.Service(vs, 1, ids, active)


def _requests(lab: Lab, n: int, keep: bool = False) -> dict[str, object]:
    out = lab.run("client", ["python3", "-c", CLIENT, lab.address("director", 0), str(n),
                             "keep" if keep else "new"], timeout=60)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_weights_hold_for_new_connections(lab: Lab) -> None:
    plan = nft.plan([_service(lab, {"r1": 1, "r2": 1, "r3": 2})])
    apply.run(nft.transaction(None, plan), _prefix(lab))
    got = _requests(lab, 400)
    assert got["failed"] == 0
    seen = got["seen"]
    assert isinstance(seen, dict)
    # numgen walks the interleaved slots in order: 400 connections get the weights' shares
    # to within a connection or two (100, 100, 200).
    assert abs(seen["r1"] - 100) <= 3 and abs(seen["r2"] - 100) <= 3
    assert abs(seen["r3"] - 200) <= 3
    # The kernel counted each server's connections, and the bytes both ways.
    names = {counters.name(1, i + 1, kind): (r, kind) for i, r in enumerate(REALS)
             for kind in counters.KINDS}
    traffic = counters.read(asyncio.run(apply.counters(_prefix(lab))), names)
    assert {r: t.connections for r, t in traffic.items()} == seen
    for r, t in traffic.items():  # a handshake, a request, its answer, a close: each way
        assert t.packets_in >= 5 * seen[r] and t.packets_out >= 4 * seen[r], t
        assert t.bytes_in >= 40 * t.packets_in and t.bytes_out >= 40 * t.packets_out, t


def test_a_removed_real_server_takes_its_counters_and_keeps_the_others(lab: Lab) -> None:
    three = _service(lab, {"r1": 1, "r2": 1, "r3": 1})
    apply.run(nft.transaction(None, nft.plan([three])), _prefix(lab))
    _requests(lab, 30)
    two = dataclasses.replace(three, vs=dataclasses.replace(three.vs, real=three.vs.real[:2]),
                              active={k: v for k, v in three.active.items()
                                      if k != three.vs.real[2].endpoint})
    apply.run(nft.transaction(nft.plan([three]), nft.plan([two])), _prefix(lab))
    left = {c["counter"]["name"]: c["counter"]["packets"]
            for c in asyncio.run(apply.counters(_prefix(lab))) if "counter" in c}
    assert not any(n.startswith("vs1_3_") for n in left) and left["vs1_1_conns"] == 10


def test_a_removed_server_gets_no_new_connection_and_keeps_its_established_one(
        lab: Lab) -> None:
    before = nft.plan([_service(lab, {"r1": 1, "r2": 1, "r3": 1})])
    apply.run(nft.transaction(None, before), _prefix(lab))
    # One kept-alive connection per real server, opened before the change.
    keeper = lab.popen("client", ["python3", "-c", textwrap.dedent(f"""
        import http.client, sys, json
        conns = [http.client.HTTPConnection("{lab.address('director', 0)}", 80, timeout=2)
                 for _ in range(3)]
        first = []
        for c in conns:
            c.request("GET", "/who"); first.append(c.getresponse().read().decode().strip())
        print(json.dumps(first), flush=True)
        sys.stdin.readline()
        again = []
        for c in conns:
            c.request("GET", "/who"); again.append(c.getresponse().read().decode().strip())
        print(json.dumps(again), flush=True)
    """)], stdin=-1, stdout=-1, text=True)
    assert keeper.stdout is not None and keeper.stdin is not None
    first = json.loads(keeper.stdout.readline())
    assert sorted(first) == ["r1", "r2", "r3"]
    after = nft.plan([_service(lab, {"r1": 1, "r2": 1})])
    script = nft.transaction(before, after)
    assert "delete table" not in script and "vs1_real" not in script  # only the slots changed
    apply.run(script, _prefix(lab))
    keeper.stdin.write("\n")
    keeper.stdin.flush()
    assert json.loads(keeper.stdout.readline()) == first  # established ones stay put
    keeper.wait(10)
    got = _requests(lab, 90)
    assert got["failed"] == 0 and set(got["seen"]) == {"r1", "r2"}  # type: ignore[arg-type]


def test_below_quorum_clients_are_refused_at_once(lab: Lab) -> None:
    plan = nft.plan([_service(lab, {})])
    apply.run(nft.transaction(None, plan), _prefix(lab))
    got = _requests(lab, 5)
    assert got["failed"] == 5 and got["seen"] == {}


def test_persistence_keeps_a_client_on_its_server(lab: Lab) -> None:
    plan = nft.plan([_service(lab, {"r1": 1, "r2": 1, "r3": 1}, persistence=60.0)])
    apply.run(nft.transaction(None, plan), _prefix(lab))
    got = _requests(lab, 30)
    assert got["failed"] == 0 and len(got["seen"]) == 1  # type: ignore[arg-type]


def test_a_refused_transaction_leaves_the_ruleset_as_it_was(lab: Lab) -> None:
    plan = nft.plan([_service(lab, {"r1": 1, "r2": 1, "r3": 1})])
    apply.run(nft.transaction(None, plan), _prefix(lab))
    held = apply.listing(_prefix(lab))
    bad = nft.transaction(plan, plan) + "add rule inet vigil_lb vs1 no such thing\n"
    with pytest.raises(apply.NftError, match="refused"):
        apply.run("flush chain inet vigil_lb vs1\n" + bad, _prefix(lab))
    assert _strip(apply.listing(_prefix(lab))) == _strip(held)


def _strip(items: list[dict[str, object]]) -> list[dict[str, object]]:
    return [i for i in items if "metainfo" not in i]


def _held(lab: Lab) -> tuple[dict[str, set[tuple[object, str]]], dict[str, int]]:
    """The elements of every map and the rule count of every chain vigil's table holds
    (a concatenated key, direction . mark, as its JSON)."""
    maps: dict[str, set[tuple[object, str]]] = {}
    rules: dict[str, int] = {}
    for item in apply.listing(_prefix(lab)):
        if "map" in item:
            m = item["map"]
            maps[m["name"]] = {(k if isinstance(k, int) else json.dumps(k, sort_keys=True),
                                json.dumps(v, sort_keys=True)) for k, v in m.get("elem", [])}
        elif "chain" in item:
            rules.setdefault(item["chain"]["name"], 0)
        elif "rule" in item:
            rules[item["rule"]["chain"]] = rules.get(item["rule"]["chain"], 0) + 1
    return maps, rules


def _expected(plan: nft.Plan) -> tuple[dict[str, int], dict[str, int]]:
    return ({k: len(d.elements) for k, d in plan.maps.items() if d.kind == "map"},
            {k: len(r) for k, r in plan.chains.items()})


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.dictionaries(st.sampled_from(REALS), st.integers(0, 5)),
                          st.booleans()), min_size=1, max_size=4))
def test_any_sequence_of_changes_ends_in_the_last_plan(
        lab: Lab, steps: list[tuple[dict[str, int], bool]]) -> None:
    """From any ruleset to any other by transaction(old, new): the kernel then holds exactly
    the new plan's maps and rules, whatever came before."""
    old = None
    for weights, persistent in steps:
        new = nft.plan([_service(lab, weights, persistence=30.0 if persistent else None)])
        apply.run(nft.transaction(old, new), _prefix(lab))
        old = new
    maps, rules = _held(lab)
    want_maps, want_rules = _expected(old)
    assert {k: len(v) for k, v in maps.items()} == want_maps
    assert rules == want_rules
    slots = old.maps.get("vs1_slots")
    if slots is not None:
        assert {k: v for k, v in maps["vs1_slots"]} == {
            int(k): json.dumps(int(v, 16)) for k, v in slots.elements.items()}
