"""nft_dr.py without a kernel: the direct-routing table, and that a change touches only what
changed (tests/integration/test_balancer_dr.py sends real traffic through it)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.balancer import nft, nft_dr
from vigil.balancer.model import Endpoint, RealServer, VirtualServer
from vigil.balancer.nft_dr import Wiring


def ep(a: str, port: int = 80) -> Endpoint:
    return Endpoint(ipaddress.ip_address(a), port)


REALS = tuple(RealServer(ep(f"10.0.1.{i}")) for i in (1, 2, 3))
IDS = {r.endpoint: i + 1 for i, r in enumerate(REALS)}
LAN = Wiring("eth0", "eth0")
SEED = f"{nft.seed(VirtualServer('web', 'web', (), endpoint=ep('192.168.10.200'))):#010x}"


def service(active: dict[int, int], gone: tuple[int, ...] = (), n: int = 7,
            **kw: object) -> nft.Service:
    vs = VirtualServer("web", "web", REALS, endpoint=ep("192.168.10.200"), forward="dr", **kw)
    return nft.Service(vs, n, IDS, {REALS[i].endpoint: w for i, w in active.items() if w},
                       frozenset(REALS[i].endpoint for i in gone))


def test_each_connection_is_pinned_then_hashed_and_sent_to_its_server_s_mac() -> None:
    p = nft_dr.plan([service({0: 1, 1: 1})], {7: LAN})
    assert (p.family, p.table) == ("netdev", "vigil_dr")
    assert p.bases == {"in1": 'type filter hook ingress device "eth0" priority 0; '
                              'policy accept;'}
    assert p.chains["in1"] == ("ip daddr 192.168.10.200 tcp dport 80 jump vs7",)
    conn = "ip saddr . tcp sport"
    fwd = 'counter name meta mark map @counters_in fwd ip to meta mark map @vs7_real ' \
        'device "eth0"'
    assert p.chains["vs7"] == (
        "meta mark set 0x0",
        f"meta mark set {conn} map @vs7_flows",
        f"meta mark != 0x0 update @vs7_flows {{ {conn} : meta mark }} {fwd}",
        f"meta mark set jhash {conn} mod 1021 seed {SEED} map @vs7_slots",
        f"update @vs7_flows {{ {conn} : meta mark }} counter name meta mark map "
        "@counters_conns",
        fwd)
    # a server that takes no new connection keeps its pinned ones: still in _real
    assert p.maps["vs7_real"].elements == {"0x00070001": "10.0.1.1", "0x00070002": "10.0.1.2",
                                           "0x00070003": "10.0.1.3"}
    assert set(p.maps["vs7_slots"].elements.values()) == {"0x00070001", "0x00070002"}
    assert p.maps["vs7_flows"].spec == ("type ipv4_addr . inet_service : mark; size 262144; "
                                        "flags dynamic, timeout; timeout 300s")


def test_a_failed_server_of_a_service_that_is_not_quiescent_loses_its_connections() -> None:
    p = nft_dr.plan([service({0: 1, 1: 1}, gone=(2,))], {7: LAN})
    assert "0x00070003" not in p.maps["vs7_real"].elements


def test_the_weights_hold_in_the_slots_whatever_the_scheduler() -> None:
    for scheduler in ("rr", "wrr", "sh", "mh"):
        p = nft_dr.plan([service({0: 1, 1: 3}, scheduler=scheduler)], {7: LAN})
        owners = list(p.maps["vs7_slots"].elements.values())
        share = owners.count("0x00070002") / len(owners)
        assert abs(share - 0.75) < 0.01, (scheduler, share)


def test_source_hashing_and_persistence_key_on_the_client() -> None:
    sh = nft_dr.plan([service({0: 1}, scheduler="sh")], {7: LAN}).chains["vs7"]
    assert f"meta mark set jhash ip saddr mod 1021 seed {SEED} map @vs7_slots" in sh
    assert "meta mark set ip saddr . tcp sport map @vs7_flows" in sh  # pinned by connection
    p = nft_dr.plan([service({0: 1}, persistence=600.0, persistence_netmask=24)], {7: LAN})
    client = "ip saddr and 255.255.255.0"
    assert f"meta mark set {client} map @vs7_flows" in p.chains["vs7"]
    assert f"meta mark set jhash {client} mod 1021 seed {SEED} map @vs7_slots" in \
        p.chains["vs7"]
    assert p.maps["vs7_flows"].spec.startswith("type ipv4_addr : mark;")
    assert p.maps["vs7_flows"].spec.endswith("timeout 600s")


def test_below_quorum() -> None:
    def rules(**kw: object) -> tuple[str, ...]:
        return nft_dr.plan([service({0: 1}, quorum=2, **kw)], {7: Wiring("eth0", "eth1")}) \
            .chains["vs7"]
    pinned = rules()[:3]  # established connections go on to their servers
    assert pinned[2].endswith('fwd ip to meta mark map @vs7_real device "eth1"')
    assert "counter name meta mark map @counters_in" in pinned[2]
    assert rules(sorry_server=ep("127.0.0.1"))[3:] == ("accept",)  # the director serves
    assert rules(sorry_server=ep("10.0.2.9"))[3:] == ('fwd ip to 10.0.2.9 device "eth1"',)
    assert rules()[3:] == ("meta l4proto tcp reject with tcp reset",)
    assert rules(protocol="udp")[3:] == ("drop",)


def test_ipv6_udp_and_two_ingress_interfaces() -> None:
    reals = (RealServer(ep("fd00::1", 53)), RealServer(ep("fd00::2", 53)))
    v6 = VirtualServer("dns", "g", reals, endpoint=ep("fd00::100", 53), protocol="udp",
                       forward="dr")
    ids = {r.endpoint: i + 1 for i, r in enumerate(reals)}
    p = nft_dr.plan([nft.Service(v6, 2, ids, {r.endpoint: 1 for r in reals}),
                     service({0: 1})], {2: Wiring("eth1", "eth1"), 7: LAN})
    assert p.chains["in1"] == ("ip daddr 192.168.10.200 tcp dport 80 jump vs7",)
    assert p.chains["in2"] == ("ip6 daddr fd00::100 udp dport 53 jump vs2",)
    assert p.chains["vs2"][-1].endswith('fwd ip6 to meta mark map @vs2_real device "eth1"')
    assert f"meta mark set jhash ip6 saddr . udp sport mod 1021 seed {nft.seed(v6):#010x} " \
        "map @vs2_slots" in p.chains["vs2"]
    assert p.maps["vs2_real"].spec == "type mark : ipv6_addr"


def test_the_hash_s_seed_is_the_service_s_own_so_both_directors_agree() -> None:
    a = nft_dr.plan([service({0: 1})], {7: LAN})
    b = nft_dr.plan([service({0: 1, 1: 2}, n=7)], {7: LAN})
    assert SEED in a.chains["vs7"][3] and SEED in b.chains["vs7"][3]
    other = VirtualServer("web", "web", (), endpoint=ep("192.168.10.201"))
    assert nft.seed(other) != int(SEED, 16)


def test_what_cannot_be_planned_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'eth0\"' is not an interface name"):
        nft_dr.plan([service({0: 1})], {7: Wiring('eth0"', "eth0")})
    with pytest.raises(ValueError, match="least-connection"):
        nft_dr.plan([service({0: 1}, scheduler="wlc")], {7: LAN})
    nat = dataclasses.replace(service({0: 1}), vs=dataclasses.replace(service({0: 1}).vs,
                                                                        forward="nat"))
    with pytest.raises(ValueError, match="not a direct-routing service"):
        nft_dr.plan([nat], {7: LAN})


def test_a_change_of_weight_touches_only_slots_and_never_the_pinned_connections() -> None:
    before = nft_dr.plan([service({0: 1, 1: 1, 2: 1})], {7: LAN})
    after = nft_dr.plan([service({0: 1, 1: 1})], {7: LAN})
    script = nft.transaction(before, after)
    assert script and all(line.split()[:5] in (
        ["delete", "element", "netdev", "vigil_dr", "vs7_slots"],
        ["add", "element", "netdev", "vigil_dr", "vs7_slots"]) for line in script.splitlines())


def test_a_new_ingress_interface_replaces_the_table() -> None:
    before = nft_dr.plan([service({0: 1})], {7: LAN})
    after = nft_dr.plan([service({0: 1})], {7: Wiring("eth1", "eth0")})
    script = nft.transaction(before, after)
    assert script.startswith("add table netdev vigil_dr\ndelete table netdev vigil_dr\n")
    assert 'add chain netdev vigil_dr in1 { type filter hook ingress device "eth1"' in script


@given(st.lists(st.dictionaries(st.integers(0, 2), st.integers(0, 5)), min_size=2, max_size=5))
def test_no_change_of_health_or_weight_forgets_a_pinned_connection(
        steps: list[dict[int, int]]) -> None:
    for old, new in zip(steps, steps[1:]):
        a = nft_dr.plan([service(old)], {7: LAN})
        b = nft_dr.plan([service(new)], {7: LAN})
        script = nft.transaction(a, b)
        assert (script == "") == (a == b)
        # the pinned connections are never touched
        assert not any(w in script for w in ("delete map netdev vigil_dr vs7_flows",
                                             "delete table", "flush map"))
