"""nft.py without a kernel: what each plan holds and that a transaction touches only what
changed (tests/integration/test_balancer_nft.py applies them to the real nftables)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.balancer import nft
from vigil.balancer.model import Endpoint, RealServer, VirtualServer


def ep(a: str, port: int = 80) -> Endpoint:
    return Endpoint(ipaddress.ip_address(a), port)


REALS = tuple(RealServer(ep(f"10.0.1.{i}")) for i in (1, 2, 3))
IDS = {r.endpoint: i + 1 for i, r in enumerate(REALS)}


def service(active: dict[int, int], **kw: object) -> nft.Service:
    vs = VirtualServer("web", "web", REALS, endpoint=ep("192.168.10.200"), **kw)
    return nft.Service(vs, 7, IDS, {REALS[i].endpoint: w for i, w in active.items() if w})


def test_the_entry_chain_sends_the_service_to_its_own_chain() -> None:
    p = nft.plan([service({0: 1, 1: 1})])
    assert p.chains["prerouting"] == ("ip daddr 192.168.10.200 tcp dport 80 jump vs7",)
    assert p.chains["vs7"] == ("ct mark set numgen inc mod 1021 map @vs7_slots",
                               "counter name ct mark map @counters_conns",
                               "meta l4proto tcp dnat ip addr . port to ct mark map @vs7_real")
    assert p.maps["vs7_real"].elements == {"0x00070001": "10.0.1.1 . 80",
                                           "0x00070002": "10.0.1.2 . 80",
                                           "0x00070003": "10.0.1.3 . 80"}
    assert set(p.maps["vs7_slots"].elements.values()) == {"0x00070001", "0x00070002"}


def test_source_hashing_and_persistence() -> None:
    p = nft.plan([service({0: 1, 2: 1}, scheduler="mh", persistence=300.0,
                          persistence_netmask=24)])
    rules = p.chains["vs7"]
    assert "ip saddr and 255.255.255.0 @vs7_p1 ct mark set 0x00070001" in rules
    assert "ct mark and 0xffff0000 != 0x00070000 ct mark set jhash ip saddr and " \
           f"255.255.255.0 mod 1021 seed {nft.seed(service({}).vs):#010x} map @vs7_slots" in rules
    assert "ct mark 0x00070003 update @vs7_p3 { ip saddr and 255.255.255.0 }" in rules
    assert p.maps["vs7_p3"].spec == "type ipv4_addr; flags dynamic, timeout; timeout 300s"
    assert "vs7_p2" not in p.maps  # no set for a server that takes no new connection


def test_below_quorum_the_sorry_server_answers_or_clients_are_refused() -> None:
    assert nft.plan([service({0: 1}, quorum=2, sorry_server=ep("127.0.0.1", 8080))]) \
        .chains["vs7"] == ("meta l4proto tcp redirect to :8080",)
    assert nft.plan([service({}, sorry_server=ep("10.0.2.9"))]).chains["vs7"] == \
        ("meta l4proto tcp dnat ip to 10.0.2.9:80",)
    assert nft.plan([service({})]).chains["vs7"] == ("meta l4proto tcp reject with tcp reset",)


def test_ipv6_and_fwmark_services() -> None:
    reals = (RealServer(ep("fd00::1")), RealServer(ep("fd00::2")))
    vs = VirtualServer("v6", "g", reals, endpoint=ep("fd00::100", 443))
    p = nft.plan([nft.Service(vs, 1, {r.endpoint: i + 1 for i, r in enumerate(reals)},
                              {r.endpoint: 1 for r in reals})])
    assert p.chains["prerouting"] == ("ip6 daddr fd00::100 tcp dport 443 jump vs1",)
    assert p.maps["vs1_real"].spec == "type mark : ipv6_addr . inet_service"
    assert p.chains["vs1"][-1].startswith("meta l4proto tcp dnat ip6 addr . port")
    marked = VirtualServer("m", "g", REALS, fwmark=1)
    assert nft.plan([nft.Service(marked, 2, IDS, {})]).chains["prerouting"] == \
        ("meta mark 0x1 meta l4proto tcp jump vs2",)


@pytest.mark.parametrize("kw, message", [({"scheduler": "wlc"}, "least-connection"),
                                         ({"forward": "dr"}, "nft_dr.py's")])
def test_what_the_nftables_data_plane_lacks_is_refused_by_name(kw: dict[str, str],
                                                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nft.plan([service({0: 1}, **kw)])


def test_numbering_keeps_numbers_and_fills_the_lowest_gap() -> None:
    assert nft.numbering(["a", "b", "c"], {"b": 1, "c": 5}, 10) == {"a": 2, "b": 1, "c": 5}
    assert nft.numbering(["a", "c"], {"b": 1, "c": 5}, 10) == {"a": 2, "c": 5}
    assert nft.numbering(["a", "c"], {"b": 1, "c": 2}, 2) == {"a": 1, "c": 2}  # full: reuse
    with pytest.raises(ValueError, match="more than 2"):
        nft.numbering(["a", "b", "c"], {}, 2)


def test_an_unchanged_plan_is_no_transaction() -> None:
    p = nft.plan([service({0: 1, 1: 2})])
    assert nft.transaction(p, p) == ""
    assert nft.transaction(None, p).startswith("add table inet vigil_lb\ndelete table")


@given(st.dictionaries(st.integers(0, 2), st.integers(0, 4)),
       st.dictionaries(st.integers(0, 2), st.integers(0, 4)))
def test_a_change_of_weights_touches_only_the_slots_that_change(a: dict[int, int],
                                                                b: dict[int, int]) -> None:
    old, new = nft.plan([service(a)]), nft.plan([service(b)])
    script = nft.transaction(old, new)
    assert "delete table" not in script and "element inet vigil_lb vs7_real" not in script
    changed = {k for k, v in new.maps.get("vs7_slots", nft.MapDecl("")).elements.items()
               if old.maps.get("vs7_slots", nft.MapDecl("")).elements.get(k) != v}
    added = [line for line in script.splitlines()
             if line.startswith("add element inet vigil_lb vs7_slots")]
    listed = {part.split(" : ")[0].strip(" {}") for line in added
              for part in line.split("{", 1)[1].split(",")}
    assert listed == changed or (not changed and not added)


def test_a_server_that_leaves_takes_its_counters_after_the_elements_that_name_them() -> None:
    three = service({0: 1, 1: 1, 2: 1})
    two_vs = VirtualServer("web", "web", REALS[:2], endpoint=ep("192.168.10.200"))
    two = nft.Service(two_vs, 7, {r.endpoint: IDS[r.endpoint] for r in REALS[:2]},
                      {REALS[0].endpoint: 1, REALS[1].endpoint: 1})
    before, after = nft.plan([three]), nft.plan([two])
    assert before.maps["vs7_3_in"].kind == "counter"
    assert before.maps["counters_nat"].elements["reply . 0x00070003"] == '"vs7_3_out"'
    lines = nft.transaction(before, after).splitlines()
    gone = [i for i, line in enumerate(lines) if line.startswith("delete counter")]
    assert [lines[i].split()[-1] for i in gone] == ["vs7_3_conns", "vs7_3_in", "vs7_3_out"]
    names = [i for i, line in enumerate(lines) if "delete element" in line and
             ("counters_" in line)]
    assert names and max(names) < min(gone)
