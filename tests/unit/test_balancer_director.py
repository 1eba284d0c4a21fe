"""director.py: what the data plane should hold from health, drains and configuration."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from vigil.balancer.director import Director
from vigil.balancer.model import Endpoint, RealServer, VirtualServer
from vigil.balancer.nft_dr import Wiring


def ep(last: int) -> Endpoint:
    return Endpoint(ipaddress.ip_address(f"10.0.1.{last}"), 80)


def vs(name: str, *lasts: int, weights: dict[int, int] | None = None) -> VirtualServer:
    w = weights or {}
    return VirtualServer(name, "g", tuple(RealServer(ep(i), weight=w.get(i, 1)) for i in lasts),
                         endpoint=Endpoint(ipaddress.ip_address("192.168.10.200"),
                                           80 if name == "web" else 81))


def test_up_weighted_and_not_drained_servers_take_new_connections() -> None:
    d = Director([vs("web", 1, 2, 3, 4, weights={4: 0})])
    d.drain(d.find("web", "10.0.1.2:80"))
    assert d.active(d.services["web"], lambda k: k[1] != ep(3)) == {ep(1): 1}
    d.enable(d.find("web", "10.0.1.2:80"))
    assert d.active(d.services["web"], lambda k: True) == {ep(1): 1, ep(2): 1, ep(3): 1}


def test_unknown_names_are_named() -> None:
    d = Director([vs("web", 1)])
    with pytest.raises(KeyError, match="no virtual server 'db'; virtual servers: web"):
        d.find("db", "10.0.1.1:80")
    with pytest.raises(KeyError, match="has no real server '10.0.1.9:80'; its servers: "
                                       "10.0.1.1:80"):
        d.find("web", "10.0.1.9:80")


def test_a_reload_keeps_every_number_and_forgets_drains_of_removed_servers() -> None:
    d = Director([vs("web", 1, 2, 3), vs("api", 5)])
    before = (dict(d.numbers), {k: dict(v) for k, v in d.ids.items()})
    d.drain(d.find("web", "10.0.1.3:80"))
    d.drain(d.find("web", "10.0.1.2:80"))
    d.reconfigure([vs("api", 5), vs("web", 2, 4, 1)])
    assert d.numbers == before[0]
    # 3's number is not given to 4 in the change that removes 3 (its persistence set goes)
    assert d.ids["web"] == {ep(1): 1, ep(2): 2, ep(4): 4}
    assert d.drained == {("web", ep(2))}


def test_the_plan_holds_only_the_services_of_groups_run_here() -> None:
    d = Director([vs("web", 1), vs("api", 5)])
    assert d.plan(lambda k: True, lambda g: False) == []
    (nat,) = d.plan(lambda k: True, lambda g: True)
    assert (nat.family, nat.table) == ("inet", "vigil_lb")
    assert set(nat.chains) == {"prerouting", "vs1", "vs2", "refusals", "counting"}
    assert set(nat.bases) == {"prerouting", "refusals", "counting"}


def test_direct_routing_services_get_their_own_table_with_their_wiring() -> None:
    web = dataclasses.replace(vs("web", 1, 2), forward="dr")
    d = Director([web, vs("api", 5)])
    with pytest.raises(ValueError, match="need their wiring"):
        d.plan(lambda k: True, lambda g: True)
    asked: list[str] = []

    def wiring(name: str) -> Wiring:
        asked.append(name)
        return Wiring("eth0", "eth1")
    nat, dr = d.plan(lambda k: True, lambda g: True, wiring)
    assert asked == ["web"] and set(nat.chains) == {"prerouting", "vs2", "refusals",
                                                    "counting"}
    assert (dr.family, dr.table) == ("netdev", "vigil_dr")
    assert dr.chains["in1"] == ("ip daddr 192.168.10.200 tcp dport 80 jump vs1",)
    assert dr.bases["in1"].startswith('type filter hook ingress device "eth0"')
    assert dr.chains["vs1"][-1] == ("counter name meta mark map @counters_in "
                                    'fwd ip to meta mark map @vs1_real device "eth1"')


def test_failed_servers_are_gone_unless_the_service_is_quiescent() -> None:
    d = Director([vs("web", 1, 2, 3, weights={3: 0})])
    web = d.services["web"]
    d.drain(d.find("web", "10.0.1.1:80"))
    down = {ep(1): False, ep(2): True, ep(3): False}
    assert d.gone(web, lambda k: down[k[1]]) == {ep(2)}  # not the drained, nor weight 0
    assert d.gone(dataclasses.replace(web, quiescent=True), lambda k: down[k[1]]) == set()
    assert d.mark_of(("web", ep(2))) == 1 << 16 | 2


def test_a_connection_mark_names_its_server_and_no_other() -> None:
    from vigil.balancer import nft
    d = Director([vs("web", 1, 2), vs("api", 5)])
    for name, v in d.services.items():
        for r in v.real:
            assert d.key_of(nft.mark(d.numbers[name], d.ids[name][r.endpoint])) == \
                (name, r.endpoint)
    assert d.key_of(0) is None and d.key_of(0xFFFF0001) is None
    assert d.key_of(nft.mark(d.numbers["web"], 9)) is None
    gone = nft.mark(d.numbers["web"], d.ids["web"][ep(2)])
    d.reconfigure([vs("web", 1), vs("api", 5)])
    assert d.key_of(gone) is None  # a server removed since: its refusals mean nothing
