"""vigil.config.ldirectord: ldirectord.cf -> vigil's virtual servers, with the notes where
the meaning changes and every line not carried over.

Seed 003 (/work/shared/seeds/003_*.txt) sets up Heartbeat + ldirectord 3.9.5 in front of two
web servers, virtual address 172.25.39.100; its ldirectord.cf is a screenshot, so
SEED_003 below is that file written out the way its guide describes it: direct routing to
the servers of its ipvsadm lines (172.25.39.4 and .5), and the director itself when both are
down ("rs都挂掉,本机补上"). The others are written in the shapes of ldirectord's own sample
ldirectord.cf.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from pathlib import Path

import pytest

from vigil.balancer import model as lb
from vigil.config import ldirectord, toml
from vigil.config.lvs_import import FWMARK_DR, TUNNEL, Imported, render
from vigil.errors import ConfigError

HTTP_MASQ = """\
# Global Directives
checktimeout=3
checkinterval=5
autoreload=yes
logfile="/var/log/ldirectord.log"
quiescent=yes

# A web service behind NAT
virtual=192.168.10.200:80
\treal=192.168.10.11:80 masq 2
\treal=192.168.10.12:8080 masq
\tfallback=127.0.0.1:80
\tservice=http
\trequest="index.html"
\treceive="Test Page"
\tvirtualhost=www.example.com
\tscheduler=rr
\tpersistent=600
\tnetmask=255.255.255.0
\tprotocol=tcp
\tchecktype=negotiate
"""

SEED_003 = """\
checktimeout=3
checkinterval=1
autoreload=yes
quiescent=no

virtual=172.25.39.100:80
        real=172.25.39.4:80 gate
        real=172.25.39.5:80 gate
        fallback=127.0.0.1:80 gate
        service=http
        scheduler=rr
        protocol=tcp
        checktype=negotiate
        checkport=80
        request="index.html"
        receive="Test Page"
"""


def ep(text: str) -> lb.Endpoint:
    address, _, port = text.rpartition(":")
    return lb.Endpoint(ipaddress.ip_address(address.strip("[]")), int(port))


def read(text: str) -> Imported:
    return ldirectord.import_text(text, "ldirectord.cf")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        read(text)
    return [str(p) for p in e.value.problems]


def one(text: str) -> lb.VirtualServer:
    imported = read(text)
    assert len(imported.services) == 1, imported.dropped
    return imported.services[0]


def test_the_typical_http_masq_file_gives_the_exact_virtual_server() -> None:
    imported = read(HTTP_MASQ)
    check = lb.Check(type="http", path="/index.html", expect_body="Test Page",
                     host="www.example.com", interval=5.0, timeout=3.0, rise=1, fall=1)
    assert imported.services == [lb.VirtualServer(
        name="vs-192-168-10-200-80", group="lvs", endpoint=ep("192.168.10.200:80"),
        real=(lb.RealServer(ep("192.168.10.11:80"), 2, check),
              lb.RealServer(ep("192.168.10.12:8080"), 1, check)),
        protocol="tcp", scheduler="rr", forward="nat", persistence=600.0,
        persistence_netmask=24, sorry_server=ep("127.0.0.1:80"), quiescent=True)]
    assert imported.notes == {"vs-192-168-10-200-80": [
        "ldirectord took any 2xx answer, after following redirects; vigil expects status 200 "
        "(set expect_status to take others)"]}


def test_directives_vigil_has_no_use_for_are_dropped_with_their_line() -> None:
    assert read(HTTP_MASQ).dropped == [
        "ldirectord.cf:4: autoreload=yes: vigil reads vigil.toml when told to reload, not "
        "this file",
        "ldirectord.cf:5: logfile=\"/var/log/ldirectord.log\": vigil logs to the journal"]


def test_a_group_is_set_on_every_virtual_server() -> None:
    imported = ldirectord.import_text(HTTP_MASQ, "x.cf", group="web")
    assert [vs.group for vs in imported.services] == ["web"]


def test_a_real_servers_own_request_and_receive_override_the_virtuals() -> None:
    vs = one("virtual=10.0.0.100:80\n"
             "\treal=10.0.0.1:80 masq\n"
             "\treal=10.0.0.2:80 masq 3 \"/health\", \"^OK$\"\n"
             "\trequest=\"index.html\"\n\treceive=\"Test\"\n")
    first, second = vs.real
    assert (first.check.path, first.check.expect_body) == ("/index.html", "Test")
    assert (second.weight, second.check.path, second.check.expect_body) == (3, "/health", "^OK$")
    assert second.check == lb.Check(type="http", path="/health", expect_body="^OK$",
                                    interval=first.check.interval,
                                    timeout=first.check.timeout, rise=1, fall=1)


def test_seed_003_is_one_direct_routing_service_with_the_director_as_fallback() -> None:
    imported = read(SEED_003)
    check = lb.Check(type="http", path="/index.html", expect_body="Test Page", port=80,
                     interval=1.0, timeout=1.0, rise=1, fall=1)
    assert imported.services == [lb.VirtualServer(
        name="vs-172-25-39-100-80", group="lvs", endpoint=ep("172.25.39.100:80"),
        real=(lb.RealServer(ep("172.25.39.4:80"), 1, check),
              lb.RealServer(ep("172.25.39.5:80"), 1, check)),
        protocol="tcp", scheduler="rr", forward="dr", sorry_server=ep("127.0.0.1:80"),
        quiescent=False)]
    assert imported.notes == {"vs-172-25-39-100-80": [
        "ldirectord took any 2xx answer, after following redirects; vigil expects status 200 "
        "(set expect_status to take others)",
        "negotiatetimeout 3s is longer than checkinterval 1s: vigil's check timeout is at "
        "most its interval, so 1s"]}
    assert imported.dropped == [
        "ldirectord.cf:3: autoreload=yes: vigil reads vigil.toml when told to reload, not "
        "this file"]


VIGIL_TOML = """[cluster]
name = "c"
key_file = "/etc/vigil/key"
[[node]]
name = "server1"
address = "172.25.39.1"
[[node]]
name = "server2"
address = "172.25.39.2"
[[group]]
name = "web"
home = "server1"
[[group.resource]]
type = "ip"
address = "172.25.39.100/24"
interface = "eth0"
"""


def test_seed_003_round_trips_through_vigils_own_parser_as_direct_routing() -> None:
    imported = read(SEED_003)
    text = render(imported, "seed 003", VIGIL_TOML)
    assert 'forward = "dr"' in text and 'sorry_server = "127.0.0.1:80"' in text
    [vs] = toml.parse(text, "vigil.toml").virtual_servers
    assert vs == dataclasses.replace(imported.services[0], group="web")
    assert (vs.forward, [str(r.endpoint) for r in vs.real]) == \
        ("dr", ["172.25.39.4:80", "172.25.39.5:80"])


def test_the_method_of_most_real_servers_is_carried_and_ipip_never() -> None:
    imported = read("virtual=10.0.0.100:443\n"
                    "\treal=10.0.0.1:443 masq\n\treal=10.0.0.2->10.0.0.3:443 gate\n"
                    "\treal=10.0.0.4:443 ipip\n\tservice=https\n")
    [vs] = imported.services
    assert (vs.forward, [r.endpoint for r in vs.real]) == \
        ("dr", [ep("10.0.0.2:443"), ep("10.0.0.3:443")])
    assert vs.real[0].check.type == "https"
    assert imported.dropped == [
        "ldirectord.cf:2: real=10.0.0.1:443 masq: a vigil service forwards one way: this one "
        "by direct routing (gate), as most of its real servers; NAT (masq) is not carried",
        f"ldirectord.cf:4: real=10.0.0.4:443 ipip: {TUNNEL}"]
    assert TUNNEL == "IP tunnelling has no data plane in vigil; use gate (dr) or masq (nat)"


def test_a_tie_between_the_methods_is_masq() -> None:
    imported = read("virtual=10.0.0.100:80\n"
                    "\treal=10.0.0.1:80 gate\n\treal=10.0.0.2:8080 masq\n")
    [vs] = imported.services
    assert (vs.forward, [r.endpoint for r in vs.real]) == ("nat", [ep("10.0.0.2:8080")])
    assert imported.dropped == [
        "ldirectord.cf:2: real=10.0.0.1:80 gate: a vigil service forwards one way: this one "
        "by NAT (masq), vigil's choice on a tie; direct routing (gate) is not carried"]


def test_gate_on_a_firewall_mark_is_dropped_and_the_masq_servers_kept() -> None:
    imported = read("virtual=7\n\treal=10.0.0.1 gate\n\treal=10.0.0.2 gate\n"
                    "\treal=10.0.0.3:80 masq\n\tchecktype=connect\n")
    [vs] = imported.services
    assert (vs.fwmark, vs.forward, [r.endpoint for r in vs.real]) == \
        (7, "nat", [ep("10.0.0.3:80")])
    assert imported.dropped == [f"ldirectord.cf:2: real=10.0.0.1 gate: {FWMARK_DR}",
                                f"ldirectord.cf:3: real=10.0.0.2 gate: {FWMARK_DR}"]
    only_gate = read("virtual=7\n\treal=10.0.0.1 gate\n")
    assert only_gate.services == []
    assert only_gate.dropped[-1] == ("ldirectord.cf:1: virtual=7: none of its real servers "
                                     "can be carried over (see their lines)")


def test_a_gate_server_takes_the_virtual_port_its_check_stays_on_its_own() -> None:
    imported = read("virtual=10.0.0.100:80\n"
                    "\treal=10.0.0.1:8080 gate\n\treal=10.0.0.2 gate 3\n"
                    "\treal=10.0.0.3:0 gate\n\tchecktype=connect\n\tscheduler=wlc\n")
    [vs] = imported.services
    assert (vs.forward, vs.scheduler) == ("dr", "wrr")
    check = vs.real[1].check
    assert [(r.endpoint, r.weight, r.check) for r in vs.real] == [
        (ep("10.0.0.1:80"), 1, dataclasses.replace(check, port=8080)),
        (ep("10.0.0.2:80"), 3, check), (ep("10.0.0.3:80"), 1, check)]
    assert (check.type, check.port) == ("tcp", None)
    assert imported.notes[vs.name] == [
        "IPVS's 'wlc' counts connections; vigil's nftables data plane has no least-connection "
        "scheduler, so weighted round robin with the same weights",
        "real=10.0.0.1:8080 gate: direct routing cannot change the port: IPVS delivered on the "
        "virtual port 80 (ipvsadm sets a gate server's port so), and so does vigil; its check "
        "stays on port 8080"]
    assert imported.dropped == []
    text = render(imported, "ports", VIGIL_TOML.replace("172.25.39.100/24", "10.0.0.100/24"))
    assert toml.parse(text, "vigil.toml").virtual_servers[0].real == vs.real


def test_two_gate_servers_that_become_one_on_the_virtual_port_are_a_problem() -> None:
    assert problems("virtual=10.0.0.100:80\n\treal=10.0.0.1:80 gate\n"
                    "\treal=10.0.0.1:8080 gate\n") == [
        "ldirectord.cf:3: real: 10.0.0.1:80 is listed twice"]


def test_wlc_is_weighted_round_robin_with_a_note() -> None:
    imported = read("virtual=10.0.0.100:80\n\treal=10.0.0.1:80 masq\n\tscheduler=wlc\n")
    assert imported.services[0].scheduler == "wrr"
    assert any("'wlc' counts connections" in n for n in imported.notes["vs-10-0-0-100-80"])


def test_a_timeout_longer_than_the_interval_is_clamped_with_a_note() -> None:
    imported = read("checkinterval=2\n"
                    "virtual=10.0.0.100:8080\n\treal=10.0.0.1:8080 masq\n"
                    "\tchecktype=connect\n\tchecktimeout=10\n\tfailurecount=3\n")
    check = imported.services[0].real[0].check
    assert (check.type, check.interval, check.timeout, check.rise, check.fall) == \
        ("tcp", 2.0, 2.0, 1, 3)
    assert imported.notes["vs-10-0-0-100-8080"] == [
        "checktimeout 10s is longer than checkinterval 2s: vigil's check timeout is at most "
        "its interval, so 2s"]


def test_ldirectords_defaults_negotiate_http_on_port_80_every_10s() -> None:
    imported = read("virtual=10.0.0.100:80\n\treal=10.0.0.1\tmasq\n")
    vs = imported.services[0]
    assert vs.real[0].endpoint == ep("10.0.0.1:80")  # the virtual's port
    assert vs.real[0].check == lb.Check(type="http", path="/", interval=10.0, timeout=10.0,
                                        rise=1, fall=1)
    assert (vs.scheduler, vs.quiescent, vs.sorry_server) == ("wrr", False, None)
    assert any(n.startswith("negotiatetimeout 30s is longer")
               for n in imported.notes["vs-10-0-0-100-80"])


def test_globals_apply_to_virtuals_before_and_after_them_unless_overridden() -> None:
    imported = read("virtual=10.0.0.100:80\n\treal=10.0.0.1:80 masq\n"
                    "virtual=10.0.0.101:80\n\treal=10.0.0.1:80 masq\n\tnegotiatetimeout=1\n"
                    "\tquiescent=no\n"
                    "checktimeout=4\nquiescent=yes\n")
    a, b = imported.services
    assert (a.real[0].check.timeout, a.quiescent) == (4.0, True)
    assert (b.real[0].check.timeout, b.quiescent) == (1.0, False)


def test_an_external_check_is_exec_with_a_note_on_its_arguments() -> None:
    imported = read("virtual=10.0.0.100:3306\n\treal=10.0.0.1:3306 masq\n"
                    "\tchecktype=external\n"
                    "\tcheckcommand=\"/usr/local/bin/check_mysql --quiet\"\n")
    check = imported.services[0].real[0].check
    assert (check.type, check.command) == ("exec", ("/usr/local/bin/check_mysql", "--quiet"))
    assert "VIGIL_REAL_ADDRESS" in imported.notes["vs-10-0-0-100-3306"][0]


def test_an_external_command_that_needs_a_shell_runs_in_one() -> None:
    vs = one("virtual=10.0.0.100:25\n\treal=10.0.0.1:25 masq\n\tchecktype=external-perl\n"
             "\tcheckcommand=\"/etc/ha.d/check.pl | grep -q up\"\n")
    assert vs.real[0].check.command == ("/bin/sh", "-c", "/etc/ha.d/check.pl | grep -q up")


def test_a_fwmark_virtual() -> None:
    imported = read("virtual=1\n\treal=192.168.6.2:80 masq\n\treal=192.168.6.3 masq\n"
                    "\tprotocol=fwm\n\tchecktype=connect\n\tcheckport=80\n"
                    "\tfallback=127.0.0.1:80\n")
    vs = imported.services[0]
    assert (vs.name, vs.fwmark, vs.endpoint, vs.protocol) == ("fwmark-1", 1, None, "tcp")
    assert [r.endpoint for r in vs.real] == [ep("192.168.6.2:80")]
    assert (vs.real[0].check.type, vs.real[0].check.port) == ("tcp", 80)
    assert vs.sorry_server == ep("127.0.0.1:80")
    assert "fwmark service takes TCP only" in imported.notes["fwmark-1"][0]
    assert imported.dropped == [
        "ldirectord.cf:3: real=192.168.6.3 masq: vigil forwards a firewall-mark service to "
        "one port (IPVS kept the client's): give the real server its port"]


def test_every_problem_is_named_with_file_and_line_together() -> None:
    assert problems("checkinterval=often\n"
                    "bogus=1\n"
                    "real=10.0.0.1:80 masq\n"
                    "virtual=www.example.com:80\n"
                    "\treal=10.0.0.2:80 masq heavy\n"
                    "virtual=10.0.0.100:80\n"
                    "\treal=web1:80 masq\n"
                    "\treal=10.0.0.3:80 masq 70000\n"
                    "\treal=10.0.0.4:80 route\n"
                    "\tscheduler=fastest\n"
                    "virtual=10.0.0.101:80\n") == [
        "ldirectord.cf:1: checkinterval: 'often': expected seconds, a whole number from 1 to "
        "86400",
        "ldirectord.cf:2: bogus: unknown directive; ldirectord.cf has virtual=, real=, "
        "service=, checktype=, request=, receive=, scheduler=, checkinterval=, "
        "checktimeout=... (see ldirectord(8))",
        "ldirectord.cf:3: real: real= belongs to a virtual service: indent it under its "
        "virtual= line (ldirectord reads an unindented line as global)",
        "ldirectord.cf:4: virtual: 'www.example.com' is a host name: use an IP address (vigil "
        "resolves no names when it imports)",
        "ldirectord.cf:5: real: 'heavy': expected a weight, a whole number from 0 to 65535",
        "ldirectord.cf:7: real: 'web1' is a host name: use an IP address (vigil resolves no "
        "names when it imports)",
        "ldirectord.cf:8: real: '70000': expected a weight, a whole number from 0 to 65535",
        "ldirectord.cf:9: real: 'route': the forwarding method is gate, masq or ipip",
        "ldirectord.cf:10: scheduler: 'fastest' is not an IPVS scheduler (rr, wrr, lc, wlc, "
        "sh, dh...)",
        "ldirectord.cf:11: virtual: a virtual service needs at least one real= (indented "
        "under it)"]


def test_an_unindented_virtual_directive_after_a_virtual_is_global_so_a_problem() -> None:
    assert problems("virtual=10.0.0.100:80\n\treal=10.0.0.1:80 masq\nservice=http\n") == [
        "ldirectord.cf:3: service: service= belongs to a virtual service: indent it under its "
        "virtual= line (ldirectord reads an unindented line as global)"]


def test_a_duplicate_virtual_and_a_duplicate_real_are_problems() -> None:
    found = problems("virtual=10.0.0.100:80\n\treal=10.0.0.1:80 masq\n\treal=10.0.0.1:80 masq\n"
                     "virtual=10.0.0.100:80\n\treal=10.0.0.2:80 masq\n")
    assert found == ["ldirectord.cf:3: real: 10.0.0.1:80 is listed twice",
                     "ldirectord.cf:4: virtual: the same virtual service as line 1"]


def test_another_negotiated_service_is_a_tcp_connect_and_logins_are_dropped_unshown() -> None:
    imported = read("virtual=10.0.0.100:3306\n\treal=10.0.0.1:3306 masq\n\tservice=mysql\n"
                    "\tlogin=\"readuser\"\n\tpasswd=\"genericpassword\"\n"
                    "\trequest=\"SELECT 1\"\n")
    assert imported.services[0].real[0].check.type == "tcp"
    assert imported.notes["vs-10-0-0-100-3306"][0].startswith("service mysql: vigil checks "
                                                              "that the TCP connection opens")
    assert not any("genericpassword" in d for d in imported.dropped)
    assert [d.split(": ")[1] for d in imported.dropped] == ["login=\"readuser\"", "passwd"]


def test_checktype_off_drops_the_virtual_and_on_checks_nothing() -> None:
    imported = read("virtual=10.0.0.100:23\n\treal=10.0.0.1:23 masq\n\tchecktype=off\n"
                    "virtual=10.0.0.101:23\n\treal=10.0.0.1:23 masq\n\tchecktype=on\n")
    assert [vs.name for vs in imported.services] == ["vs-10-0-0-101-23"]
    assert imported.services[0].real[0].check.type == "none"
    assert imported.dropped == ["ldirectord.cf:1: virtual=10.0.0.100:23: checktype=off: "
                                "ldirectord adds none of its real or fallback servers"]


def test_port_53_is_udp_and_its_check_a_note() -> None:
    imported = read("virtual=10.0.0.100:53\n\treal=10.0.0.1:53 masq\n\treal=10.0.0.2:53 masq\n"
                    "\trequest=\"example.com\"\n\treceive=\"10.0.0.9\"\n")
    vs = imported.services[0]
    assert (vs.protocol, vs.real[0].check.type) == ("udp", "none")
    assert any("no UDP (or ICMP) check" in n for n in imported.notes[vs.name])


def test_ping_is_a_tcp_connect_with_a_note() -> None:
    imported = read("virtual=10.0.0.100:8080\n\treal=10.0.0.1:8080 masq\n\tchecktype=ping\n")
    assert imported.services[0].real[0].check.type == "tcp"
    assert "no ICMP check" in imported.notes["vs-10-0-0-100-8080"][0]


def test_combined_checks_negotiate_every_time_with_a_note() -> None:
    imported = read("virtual=10.0.0.100:80\n\treal=10.0.0.1:80 masq\n\tchecktype=5\n"
                    "\tnegotiatetimeout=3\n")
    assert imported.services[0].real[0].check.type == "http"
    assert any(n.startswith("checktype 5: ldirectord negotiated every 5th check")
               for n in imported.notes["vs-10-0-0-100-80"])


def fallback_notes(imported: Imported) -> dict[str, list[str]]:
    """The notes on fallbacks (port 80's services have their HTTP check's notes too)."""
    return {name: found for name, notes in imported.notes.items()
            if (found := [n for n in notes if n.startswith("fallback")])}


def test_fallbacks_of_a_nat_service_by_method() -> None:
    imported = read("fallback=10.0.0.50\n"
                    "virtual=10.0.0.100:80\n\treal=10.0.0.1:80 masq\n"
                    "virtual=10.0.0.101:80\n\treal=10.0.0.1:80 masq\n\tfallback=10.0.0.51:81 gate\n"
                    "virtual=10.0.0.102:80\n\treal=10.0.0.1:80 masq\n\tfallback=10.0.0.52 masq\n"
                    "virtual=10.0.0.103:80\n\treal=10.0.0.1:80 masq\n\tfallback=10.0.0.53 ipip\n"
                    "virtual=10.0.0.104:80\n\treal=10.0.0.1:80 masq\n"
                    "\tfallback=127.0.0.1:8080 gate\n")
    assert [vs.sorry_server for vs in imported.services] == \
        [ep("10.0.0.50:80"), None, ep("10.0.0.52:80"), None, ep("127.0.0.1:8080")]
    assert {vs.forward for vs in imported.services} == {"nat"}
    assert fallback_notes(imported) == {"vs-10-0-0-100-80": [
        "fallback 10.0.0.50: ldirectord forwarded it by direct routing (gate, its default for "
        "a fallback); vigil forwards it by NAT, as this service's real servers"]}
    assert imported.dropped == [
        "ldirectord.cf:6: fallback=10.0.0.51:81 gate: a vigil service forwards one way: this "
        "one by NAT (masq), as most of its real servers; direct routing (gate) is not carried",
        f"ldirectord.cf:12: fallback=10.0.0.53:80 ipip: {TUNNEL}"]


def test_fallbacks_of_a_direct_routing_service() -> None:
    imported = read("fallback=10.0.0.50\n"
                    "virtual=10.0.0.100:80\n\treal=10.0.0.1:80 gate\n"
                    "virtual=10.0.0.101:80\n\treal=10.0.0.1:80 gate\n\tfallback=10.0.0.51 masq\n"
                    "virtual=10.0.0.102:80\n\treal=10.0.0.1:80 gate\n"
                    "\tfallback=10.0.0.52:8080 gate\n"
                    "virtual=10.0.0.103:80\n\treal=10.0.0.1:80 gate\n"
                    "\tfallback=127.0.0.1:8080 masq\n")
    assert [(vs.forward, vs.sorry_server) for vs in imported.services] == [
        ("dr", ep("10.0.0.50:80")), ("dr", None), ("dr", ep("10.0.0.52:80")),
        ("dr", ep("127.0.0.1:80"))]
    assert fallback_notes(imported) == {
        "vs-10-0-0-102-80": ["fallback 10.0.0.52:8080: direct routing cannot change the port: "
                             "IPVS delivered on port 80 (ipvsadm sets a gate server's port "
                             "so), and so does vigil"],
        "vs-10-0-0-103-80": ["fallback 127.0.0.1:8080: direct routing cannot change the port: "
                             "the director answers on the virtual address, port 80"]}
    assert imported.dropped == [
        "ldirectord.cf:6: fallback=10.0.0.51:80 masq: a vigil service forwards one way: this "
        "one by direct routing (gate), as most of its real servers; NAT (masq) is not carried"]
    text = render(imported, "fallbacks", VIGIL_TOML.replace("172.25.39.100/24",
                                                            "10.0.0.100/24"))
    assert [vs.sorry_server for vs in toml.parse(text, "vigil.toml").virtual_servers] == \
        [vs.sorry_server for vs in imported.services]


def test_netmask_without_persistent_is_dropped() -> None:
    imported = read("virtual=10.0.0.100:80\n\treal=10.0.0.1:80 masq\n\tnetmask=255.255.255.0\n")
    assert imported.services[0].persistence_netmask is None
    assert imported.dropped == ["ldirectord.cf:3: netmask: without persistent it means nothing "
                                "(ldirectord ignores it too)"]


def test_ipv6_and_a_range_of_real_servers() -> None:
    v6 = one("virtual6=[2001:db8::5]:119\n\treal6=[2001:db8:0:1::4]:119 masq\n"
             "\tservice=nntp\n\tpersistent=60\n\tnetmask=64\n")
    assert (v6.endpoint, v6.real[0].endpoint) == (ep("[2001:db8::5]:119"),
                                                   ep("[2001:db8:0:1::4]:119"))
    assert (v6.persistence, v6.persistence_netmask) == (60.0, 64)
    span = one("virtual=10.0.0.100:80\n\treal=10.0.0.2->10.0.0.4:80 masq 5\n")
    assert [(str(r.endpoint), r.weight) for r in span.real] == \
        [("10.0.0.2:80", 5), ("10.0.0.3:80", 5), ("10.0.0.4:80", 5)]


def test_a_port_may_be_a_service_name() -> None:
    try:
        http = socket.getservbyname("http", "tcp")
    except OSError:
        pytest.skip("no /etc/services here")
    vs = one("virtual=10.0.0.100:http\n\treal=10.0.0.1:http masq\n")
    assert (vs.endpoint, vs.real[0].endpoint) == (ep(f"10.0.0.100:{http}"), ep(f"10.0.0.1:{http}"))


def test_blank_lines_and_comments_inside_a_section_and_quoted_hashes() -> None:
    vs = one("virtual = 10.0.0.100:80   # the web\n"
             "    real = 10.0.0.1:80 masq\n\n"
             "    # a comment\n"
             "    receive = \"#ok\"\n")
    assert vs.real[0].check.expect_body == "#ok"


def test_import_file(tmp_path: Path) -> None:
    path = tmp_path / "ldirectord.cf"
    path.write_text(HTTP_MASQ)
    imported = ldirectord.import_file(path)
    assert imported.services == read(HTTP_MASQ).services
    assert imported.dropped[0].startswith(f"{path}:4: autoreload")
    with pytest.raises(ConfigError) as e:
        ldirectord.import_file(tmp_path / "missing.cf")
    assert e.value.problems[0].file == str(tmp_path / "missing.cf")
