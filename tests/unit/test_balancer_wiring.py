"""wiring.py: which real servers a director can reach as their service needs, from what
`ip -j route get` answered (the integration tests ask a real kernel)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from vigil.balancer import wiring
from vigil.balancer.model import Endpoint, IPAddress, RealServer, VirtualServer
from vigil.balancer.nft_dr import Wiring
from vigil.balancer.wiring import WiringError


def ip(a: str) -> IPAddress:
    return ipaddress.ip_address(a)


def ep(a: str, port: int = 80) -> Endpoint:
    return Endpoint(ip(a), port)


DR = VirtualServer("web", "g", (RealServer(ep("10.0.1.1")), RealServer(ep("10.0.1.2"))),
                   endpoint=ep("10.0.1.100"), forward="dr")
ON_LINK = {"dst": "x", "dev": "eth1", "prefsrc": "10.0.1.9"}


def test_a_one_lan_director_sends_where_its_servers_are() -> None:
    routes = {ip("10.0.1.1"): ON_LINK, ip("10.0.1.2"): ON_LINK}
    assert wiring.decide(DR, routes) == Wiring("eth1", "eth1")
    assert wiring.decide(dataclasses.replace(DR, interface="eth0"), routes) == \
        Wiring("eth0", "eth1")


@pytest.mark.parametrize("second, words", [
    ({"dst": "x", "gateway": "10.0.0.1", "dev": "eth0"},
     "real server 10.0.1.2:80 is reached through the router 10.0.0.1"),
    ({"type": "local", "dst": "x", "dev": "lo"},
     "real server 10.0.1.2:80 is an address of this director"),
    ({"dst": "x", "dev": "eth2"}, "on different interfaces (real server 10.0.1.1:80 on eth1, "
                                  "real server 10.0.1.2:80 on eth2)"),
    ({"error": "Network is unreachable"},
     "real server 10.0.1.2:80: this director has no route to it (Network is unreachable)"),
])
def test_a_server_direct_routing_cannot_reach_is_named(second: dict[str, str],
                                                       words: str) -> None:
    with pytest.raises(WiringError, match=f"^virtual server 'web': .*{words}".replace(
            "(", r"\(").replace(")", r"\)")):
        wiring.decide(DR, {ip("10.0.1.1"): ON_LINK, ip("10.0.1.2"): second})


def test_a_remote_sorry_server_must_be_on_the_link_too() -> None:
    vs = dataclasses.replace(DR, sorry_server=ep("10.0.2.9"))
    routes = {ip("10.0.1.1"): ON_LINK, ip("10.0.1.2"): ON_LINK,
              ip("10.0.2.9"): {"dst": "x", "gateway": "10.0.1.254", "dev": "eth1"}}
    with pytest.raises(WiringError, match="sorry server 10.0.2.9:80 is reached through"):
        wiring.decide(vs, routes)
    local = dataclasses.replace(DR, sorry_server=ep("127.0.0.1"))
    assert wiring.decide(local, {ip("10.0.1.1"): ON_LINK, ip("10.0.1.2"): ON_LINK}) == \
        Wiring("eth1", "eth1")


def test_nat_only_warns_of_a_server_without_a_route() -> None:
    nat = dataclasses.replace(DR, forward="nat")
    said: list[str] = []
    routes = {ip("10.0.1.1"): {"dst": "x", "gateway": "10.0.0.1", "dev": "eth0"},
              ip("10.0.1.2"): {"error": "Network is unreachable"}}
    assert wiring.decide(nat, routes, said.append) is None
    assert said == ["virtual server 'web': real server 10.0.1.2:80: this director has no "
                    "route to it (Network is unreachable)"]


def test_ip_s_batch_answer_is_read_by_destination_and_by_failed_line() -> None:
    addrs = [ip("10.0.1.1"), ip("10.0.1.2"), ip("8.8.8.8"), ip("fd00::1")]
    out = (b'[{"dst":"10.0.1.2","dev":"eth1","prefsrc":"10.0.1.9","flags":[],"uid":0}]\n'
           b'[{"dst":"10.0.1.1","dev":"eth1","flags":[]}]\n'
           b'not json\n[{"dst":"10.9.9.9","dev":"eth1"}]\n')
    err = (b"RTNETLINK answers: Network is unreachable\nCommand failed -:3\n"
           b"Command failed -:99\n")
    got = wiring.parse(addrs, out, err)
    assert got[ip("10.0.1.1")]["dev"] == "eth1" and got[ip("10.0.1.2")]["dev"] == "eth1"
    assert got[ip("8.8.8.8")] == {"error": "Network is unreachable"}
    assert got[ip("fd00::1")] == {"error": "ip gave no answer for it"}
    assert set(got) == set(addrs)  # 10.9.9.9 was not asked: ignored
