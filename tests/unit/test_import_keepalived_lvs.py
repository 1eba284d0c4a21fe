"""keepalived's virtual_server blocks -> vigil's virtual servers (keepalived_virtual.py):
what carries over exactly, what changes meaning (with a note), what is dropped (listed) and
what is refused (file, line, keyword)."""

from __future__ import annotations

import ipaddress
import re

import pytest

from vigil.balancer import model as lb
from vigil.config import keepalived
from vigil.config.lvs_import import FWMARK_DR, TUNNEL
from vigil.errors import ConfigError

VRRP = """\
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        192.168.10.200/24
    }
}
"""

WEB = """\
virtual_server 192.168.10.200 80 {
    delay_loop 6
    lb_algo wlc
    lb_kind NAT
    persistence_timeout 50
    persistence_granularity 255.255.255.0
    protocol TCP
    quorum 1
    sorry_server 127.0.0.1 8080
    real_server 192.168.10.201 80 {
        weight 1
        inhibit_on_failure
        HTTP_GET {
            url {
              path /test.html
              digest 640205B7B0FC66C1EA91C463FAC6334D
              status_code 200-202
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 3
        }
    }
    real_server 192.168.10.202 80 {
        weight 3
        inhibit_on_failure
        TCP_CHECK {
            connect_timeout 8
            connect_port 8080
        }
    }
}
"""


def ep(text: str, port: int) -> lb.Endpoint:
    return lb.Endpoint(ipaddress.ip_address(text), port)


def test_a_nat_service_with_http_and_tcp_checks_carries_over() -> None:
    cluster, out, dropped = keepalived.import_text(VRRP + WEB, "keepalived.conf")
    assert cluster is not None
    assert cluster.virtual_servers == (lb.VirtualServer(
        name="vs-192-168-10-200-80", group="VI_1", endpoint=ep("192.168.10.200", 80),
        scheduler="wrr", persistence=50.0, persistence_netmask=24, quorum=1,
        sorry_server=ep("127.0.0.1", 8080), quiescent=True, real=(
            lb.RealServer(ep("192.168.10.201", 80), 1, lb.Check(
                type="http", path="/test.html", expect_status=(200, 201, 202),
                digest="640205b7b0fc66c1ea91c463fac6334d", interval=6.0, timeout=3.0,
                rise=1, fall=4)),
            lb.RealServer(ep("192.168.10.202", 80), 3, lb.Check(
                type="tcp", port=8080, interval=6.0, timeout=6.0, rise=1, fall=2)))),)
    assert "weighted round robin" in out  # wlc's note, above the service
    assert "connect_timeout 8 s is longer than the interval 6 s" in re.sub(r"\n#\s+", " ", out)
    assert any("delay_before_retry" in d and "retries at the check interval" in d
               for d in dropped)


def test_direct_routing_carries_over_and_reads_back_as_dr() -> None:
    text = VRRP + WEB.replace("lb_kind NAT", "lb_kind DR")
    cluster, out, dropped = keepalived.import_text(text, "keepalived.conf")
    assert cluster is not None  # import_text read `out` back with vigil's own parser
    [vs] = cluster.virtual_servers
    assert (vs.forward, vs.scheduler, [r.endpoint for r in vs.real]) == \
        ("dr", "wrr", [ep("192.168.10.201", 80), ep("192.168.10.202", 80)])
    assert "lb_algo wlc: IPVS's 'wlc' counts connections" in out
    assert vs.sorry_server == ep("127.0.0.1", 80)  # the director itself, on the virtual port
    assert 'forward = "dr"' in out
    assert ("sorry_server 127.0.0.1 8080: direct routing cannot change the port: the director "
            "answers on the virtual address, port 80") in re.sub(r"\n#\s+", " ", out)
    assert not any("lb_kind" in d for d in dropped)


def test_tunnelling_and_sctp_are_dropped_by_name() -> None:
    text = VRRP + WEB.replace("lb_kind NAT", "lb_kind TUN") + WEB.replace(
        "192.168.10.200 80", "192.168.10.200 443").replace("protocol TCP", "protocol SCTP")
    cluster, _, dropped = keepalived.import_text(text, "k.conf")
    assert cluster is not None and cluster.virtual_servers == ()
    assert f"k.conf:11: virtual_server 192.168.10.200: lb_kind TUN: {TUNNEL}" in dropped
    assert TUNNEL == "IP tunnelling has no data plane in vigil; use gate (dr) or masq (nat)"
    assert any("protocol SCTP" in d for d in dropped)


MIXED = """\
virtual_server 192.168.10.200 80 {
    lb_algo rr
    lb_kind DR
    real_server 192.168.10.201 80 {
    }
    real_server 192.168.10.202 8080 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 192.168.10.203 80 {
        lvs_method NAT
    }
    real_server 192.168.10.204 80 {
        lvs_method TUN
    }
}
"""


def test_each_real_servers_own_lvs_method_and_the_majority_is_carried() -> None:
    cluster, out, dropped = keepalived.import_text(VRRP + MIXED, "k.conf")
    assert cluster is not None
    [vs] = cluster.virtual_servers
    none = lb.Check(type="none", interval=60.0, timeout=5.0, rise=1)
    assert (vs.forward, vs.real) == ("dr", (
        lb.RealServer(ep("192.168.10.201", 80), 1, none),
        lb.RealServer(ep("192.168.10.202", 80), 1, lb.Check(
            type="tcp", port=8080, interval=60.0, timeout=1.0, rise=1, fall=2))))
    assert dropped == [
        "k.conf:21: virtual_server 192.168.10.200: real_server 192.168.10.203 80: NAT: a vigil "
        "service forwards one way: this one by direct routing (DR), as most of its real "
        "servers; NAT is not carried",
        f"k.conf:24: virtual_server 192.168.10.200: real_server 192.168.10.204 80: TUN: {TUNNEL}"]
    assert ("virtual_server 192.168.10.200: real_server 192.168.10.202 8080: direct routing "
            "cannot change the port: keepalived resets it to the virtual server's, 80, and so "
            "does vigil; its check stays on port 8080") in re.sub(r"\n#\s+", " ", out)


def test_a_tie_is_nat_and_the_sorry_server_forwards_as_its_service() -> None:
    text = VRRP + MIXED.replace("lb_kind DR", "lb_kind DR\n    sorry_server 192.168.10.9 80")\
        .replace("""    real_server 192.168.10.202 8080 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
""", "")
    cluster, _, dropped = keepalived.import_text(text, "k.conf")
    assert cluster is not None
    [vs] = cluster.virtual_servers
    assert (vs.forward, [r.endpoint for r in vs.real], vs.sorry_server) == \
        ("nat", [ep("192.168.10.203", 80)], None)
    tie = "this one by NAT, vigil's choice on a tie; direct routing (DR) is not carried"
    assert dropped == [
        f"k.conf:14: virtual_server 192.168.10.200: sorry_server 192.168.10.9 80 (DR): a vigil "
        f"service forwards one way: {tie}",
        f"k.conf:15: virtual_server 192.168.10.200: real_server 192.168.10.201 80: DR: a vigil "
        f"service forwards one way: {tie}",
        f"k.conf:20: virtual_server 192.168.10.200: real_server 192.168.10.204 80: TUN: {TUNNEL}"]
    nat_sorry = text.replace("sorry_server 192.168.10.9 80",
                             "sorry_server 192.168.10.9 80\n    sorry_server_lvs_method NAT")
    cluster, _, _ = keepalived.import_text(nat_sorry, "k.conf")
    assert cluster is not None and cluster.virtual_servers[0].sorry_server == \
        ep("192.168.10.9", 80)


def test_direct_routing_on_a_fwmark_is_dropped_and_an_address_member_kept() -> None:
    group = ("virtual_server_group WEB {\n    192.168.10.200 80\n    fwmark 7\n}\n")
    text = VRRP + group + WEB.replace("lb_kind NAT", "lb_kind DR").replace(
        "virtual_server 192.168.10.200 80", "virtual_server group WEB")
    cluster, _, dropped = keepalived.import_text(text, "k.conf")
    assert cluster is not None
    assert [(vs.name, vs.forward) for vs in cluster.virtual_servers] == \
        [("vs-192-168-10-200-80", "dr")]
    assert f"k.conf:15: virtual_server group WEB: fwmark 7: DR: {FWMARK_DR}" in dropped
    alone = VRRP + "virtual_server fwmark 3 {\n    lb_kind DR\n" \
        "    real_server 192.168.10.201 80 {\n    }\n}\n"
    cluster, _, dropped = keepalived.import_text(alone, "k.conf")
    assert cluster is not None and cluster.virtual_servers == ()
    assert dropped == [f"k.conf:11: virtual_server fwmark 3: DR: {FWMARK_DR}"]


def test_an_unknown_forwarding_method_is_a_problem() -> None:
    with pytest.raises(ConfigError, match=r"k.conf:14: .*lb_kind: 'ROUTE': expected NAT, DR "
                                          r"or TUN"):
        keepalived.import_text(VRRP + WEB.replace("lb_kind NAT", "lb_kind ROUTE"), "k.conf")


def test_a_virtual_server_group_is_one_service_per_member() -> None:
    group = ("virtual_server_group WEB {\n    192.168.10.200 80\n    192.168.10.200 8080\n"
             "    fwmark 7\n}\n")
    text = VRRP + group + WEB.replace("virtual_server 192.168.10.200 80",
                                      "virtual_server group WEB")
    cluster, _, _ = keepalived.import_text(text, "k.conf")
    assert cluster is not None
    assert [(vs.name, vs.endpoint, vs.fwmark) for vs in cluster.virtual_servers] == [
        ("vs-192-168-10-200-80", ep("192.168.10.200", 80), None),
        ("vs-192-168-10-200-8080", ep("192.168.10.200", 8080), None),
        ("fwmark-7", None, 7)]
    assert {vs.group for vs in cluster.virtual_servers} == {"VI_1"}


def test_misc_check_is_an_exec_check_and_no_checker_means_always_in() -> None:
    text = VRRP + WEB.replace("""        TCP_CHECK {
            connect_timeout 8
            connect_port 8080
        }""", """        MISC_CHECK {
            misc_path "/usr/local/bin/check web --quick"
            misc_timeout 2
        }""").replace("""        HTTP_GET {""", """        XHTTP_GET {""")
    with pytest.raises(ConfigError, match=r"k.conf:23: .*XHTTP_GET: unknown real_server keyword"):
        keepalived.import_text(text, "k.conf")
    cluster, _, _ = keepalived.import_text(text.replace("XHTTP_GET", "HTTP_GET"), "k.conf")
    assert cluster is not None
    check = cluster.virtual_servers[0].real[1].check
    assert check.type == "exec" and check.command == ("/usr/local/bin/check", "web", "--quick")
    assert check.timeout == 2.0
    bare = VRRP + ("virtual_server 192.168.10.200 80 {\n    lb_algo rr\n"
                   "    real_server 192.168.10.201 80 {\n        weight 2\n    }\n}\n")
    cluster, _, _ = keepalived.import_text(bare, "k.conf")
    assert cluster is not None
    assert cluster.virtual_servers[0].real[0].check.type == "none"


def test_every_mistake_is_named_together() -> None:
    real = "    real_server 10.0.0.1 80 {\n    }\n"
    text = VRRP + ("virtual_server 192.168.10.300 80 {\n" + real + "}\n"       # 11
                   "virtual_server 192.168.10.200 80 {\n    lb_algo fastest\n"  # 15
                   "    frob 1\n" + real + "}\n"                                  # 17
                   "virtual_server 192.168.10.200 81 {\n"                         # 21
                   "    real_server 10.0.0.1 99999 {\n    }\n}\n"                # 22
                   "virtual_server 192.168.10.200 82 {\n    delay_loop 6\n}\n")  # 25
    with pytest.raises(ConfigError) as e:
        keepalived.import_text(text, "k.conf")
    said = str(e.value)
    for where, what in ((11, "'192.168.10.300' is not an IP address"),
                        (16, "unknown scheduler 'fastest'"),
                        (17, "frob: unknown virtual_server keyword"),
                        (22, "'99999' is not an integer from 1 to 65535"),
                        (25, "has no real_server")):
        assert f"k.conf:{where}: " in said and what in said, (where, what, said)
