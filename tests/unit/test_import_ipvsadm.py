"""config/ipvsadm.py: saved IPVS rules (ipvsadm-save -n, /etc/sysconfig/ipvsadm) and ipvsadm
command lines -> vigil's virtual servers, with every change of meaning noted and everything
not carried over listed."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from vigil.balancer import model as lb
from vigil.config import ipvsadm, toml
from vigil.config.lvs_import import FWMARK_DR, PLACEHOLDER_GROUP, TUNNEL, render
from vigil.errors import ConfigError

CHECKED = ("ipvsadm checked nothing; vigil checks each real server with a TCP connect every "
           "1 s; set [virtual_server.check] type = \"none\" to keep ipvsadm's behaviour")

# seed 000's director: one service, two NAT real servers
SEED_000 = """\
-A -t 192.168.10.200:80 -s rr
-a -t 192.168.10.200:80 -r 192.168.10.201:80 -m
-a -t 192.168.10.200:80 -r 192.168.10.202:80 -m
"""

# seed 003's script, as the seed gives it: direct routing (-g, ipvsadm's default)
SEED_003 = """\
ipvsadm -A -t 172.25.39.100:80 -s rr            #rr 工作状态轮询
ipvsadm -a -t 172.25.39.100:80 -r 172.25.39.4:80 -g
ipvsadm -a -t 172.25.39.100:80 -r 172.25.39.5:80 -g
"""


def ep(text: str, port: int) -> lb.Endpoint:
    return lb.Endpoint(ipaddress.ip_address(text), port)


def web(group: str = PLACEHOLDER_GROUP) -> lb.VirtualServer:
    return lb.VirtualServer(
        name="vs-192-168-10-200-80", group=group, endpoint=ep("192.168.10.200", 80),
        real=(lb.RealServer(ep("192.168.10.201", 80), 1, lb.Check()),
              lb.RealServer(ep("192.168.10.202", 80), 1, lb.Check())),
        protocol="tcp", scheduler="rr", forward="nat")


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as e:
        ipvsadm.import_text(text, "rules")
    assert all(p.file == "rules" for p in e.value.problems)
    return [(p.line, p.key, p.message) for p in e.value.problems]


def test_seed_000_gives_one_nat_service_checked_by_tcp_connect() -> None:
    imported = ipvsadm.import_text(SEED_000, "/etc/sysconfig/ipvsadm")
    assert imported.services == [web()]
    assert imported.notes == {"vs-192-168-10-200-80": [CHECKED]}
    assert imported.dropped == []


def test_the_group_is_set_on_every_service(tmp_path: Path) -> None:
    path = tmp_path / "ipvsadm"
    path.write_text(SEED_000)
    assert ipvsadm.import_file(path, group="web").services == [web("web")]


def test_a_file_that_cannot_be_read_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        ipvsadm.import_file(tmp_path)
    [p] = e.value.problems
    assert (p.file, p.line, p.key) == (str(tmp_path), None, "<file>")
    assert "directory" in p.message


def test_command_lines_of_a_script_read_the_same() -> None:
    script = """\
#!/bin/sh
# the director's rules
/sbin/ipvsadm -C

ipvsadm --add-service --tcp-service 192.168.10.200:80 --scheduler=rr   # web
ipvsadm -a -t 192.168.10.200:80 \\
        -r 192.168.10.201:80 -m
ipvsadm -a -t '192.168.10.200:80' -r "192.168.10.202:80" --masquerading --weight 1
"""
    imported = ipvsadm.import_text(script, "lvs.sh")
    assert imported.services == [web()]
    assert imported.dropped == [
        "lvs.sh:3: ipvsadm -C: clears IPVS's table before the rules that follow; vigil.toml "
        "lists the whole set of services"]


def test_ipvsadm_save_n_output() -> None:
    saved = """\
-A -t 192.168.10.200:80 -s rr
-a -t 192.168.10.200:80 -r 192.168.10.201:80 -m -w 1
-a -t 192.168.10.200:80 -r 192.168.10.202:80 -m -w 1
-A -t 192.168.10.200:443 -s wrr -p 600
-a -t 192.168.10.200:443 -r 192.168.10.201:443 -m -w 3
-a -t 192.168.10.200:443 -r 192.168.10.202:443 -m -w 0
"""
    imported = ipvsadm.import_text(saved, "saved")
    https = lb.VirtualServer(
        name="vs-192-168-10-200-443", group=PLACEHOLDER_GROUP,
        endpoint=ep("192.168.10.200", 443), scheduler="wrr", persistence=600.0,
        real=(lb.RealServer(ep("192.168.10.201", 443), 3, lb.Check()),
              lb.RealServer(ep("192.168.10.202", 443), 0, lb.Check())))
    assert imported.services == [web(), https]
    assert imported.dropped == []


def test_seed_003_is_one_direct_routing_service() -> None:
    imported = ipvsadm.import_text(SEED_003, "seed003.sh")
    assert imported.services == [lb.VirtualServer(
        name="vs-172-25-39-100-80", group=PLACEHOLDER_GROUP, endpoint=ep("172.25.39.100", 80),
        real=(lb.RealServer(ep("172.25.39.4", 80), 1, lb.Check()),
              lb.RealServer(ep("172.25.39.5", 80), 1, lb.Check())),
        protocol="tcp", scheduler="rr", forward="dr")]
    assert imported.notes == {"vs-172-25-39-100-80": [CHECKED]}
    assert imported.dropped == []


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
name = "lvs"
home = "server1"
[[group.resource]]
type = "ip"
address = "172.25.39.100/24"
interface = "eth0"
"""


def test_seed_003_round_trips_through_vigils_own_parser_as_direct_routing() -> None:
    imported = ipvsadm.import_text(SEED_003, "seed003.sh")
    text = render(imported, "seed 003", VIGIL_TOML)
    assert 'forward = "dr"' in text
    assert toml.parse(text, "vigil.toml").virtual_servers == tuple(imported.services)


def test_the_method_of_most_servers_is_carried_the_others_and_tunnels_dropped() -> None:
    imported = ipvsadm.import_text("""\
-A -t 192.168.10.200:80 -s rr
-a -t 192.168.10.200:80 -r 192.168.10.201
-a -t 192.168.10.200:80 -r 192.168.10.202:80 -m
-a -t 192.168.10.200:80 -r 192.168.10.203:80 -i --tun-type ipip
-a -t 192.168.10.200:80 -r 192.168.10.204:80 -g -w 2
-a -t 192.168.10.200:80 -r 192.168.10.200:8080
""", "r")
    [vs] = imported.services
    assert vs.forward == "dr"
    assert vs.real == (lb.RealServer(ep("192.168.10.201", 80), 1, lb.Check()),
                       lb.RealServer(ep("192.168.10.204", 80), 2, lb.Check()))
    assert imported.dropped == [
        "r:3: -a -t 192.168.10.200:80 -r 192.168.10.202:80 -m: a vigil service forwards one "
        "way: this one by direct routing (-g), as most of its real servers; NAT (-m) is not "
        "carried",
        f"r:4: -a -t 192.168.10.200:80 -r 192.168.10.203:80 -i: {TUNNEL}",
        "r:6: -a -t 192.168.10.200:80 -r 192.168.10.200:80: the director itself (IPVS's local "
        "node): vigil forwards to other hosts; make it the sorry_server"]


def test_a_tie_is_nat_and_a_service_of_tunnels_only_is_dropped() -> None:
    imported = ipvsadm.import_text("""\
-A -t 192.168.10.200:80 -s rr
-a -t 192.168.10.200:80 -r 192.168.10.201:80 -g
-a -t 192.168.10.200:80 -r 192.168.10.202:8080 -m
-A -t 192.168.10.200:443
-a -t 192.168.10.200:443 -r 192.168.10.203 -i
""", "r")
    [vs] = imported.services
    assert (vs.forward, [r.endpoint for r in vs.real]) == ("nat", [ep("192.168.10.202", 8080)])
    assert imported.dropped == [
        "r:2: -a -t 192.168.10.200:80 -r 192.168.10.201:80 -g: a vigil service forwards one "
        "way: this one by NAT (-m), vigil's choice on a tie; direct routing (-g) is not "
        "carried",
        "r:4: -A -t 192.168.10.200:443: no real server left that vigil can carry (see its "
        "real servers' lines)",
        f"r:5: -a -t 192.168.10.200:443 -r 192.168.10.203:443 -i: {TUNNEL}"]


def test_direct_routing_on_a_firewall_mark_is_dropped() -> None:
    imported = ipvsadm.import_text("""\
-A -f 1 -s rr
-a -f 1 -r 192.168.10.201:0 -g
-a -f 1 -r 192.168.10.202:80 -m
-A -f 2 -s rr
-a -f 2 -r 192.168.10.203
""", "r")
    [vs] = imported.services
    assert (vs.fwmark, vs.forward, [r.endpoint for r in vs.real]) == \
        (1, "nat", [ep("192.168.10.202", 80)])
    assert imported.dropped == [
        f"r:2: -a -f 1 -r 192.168.10.201:0 -g: {FWMARK_DR}",
        "r:4: -A -f 2: no real server left that vigil can carry (see its real servers' lines)",
        f"r:5: -a -f 2 -r 192.168.10.203:0 -g: {FWMARK_DR}"]


def test_g_gives_the_server_the_services_port_as_ipvsadm_does() -> None:
    rules = """\
-A -t 192.168.10.200:80 -s rr
-a -t 192.168.10.200:80 -r 192.168.10.201:8080 -g
-a -t 192.168.10.200:80 -r 192.168.10.202:0 -g -w 3
-e -t 192.168.10.200:80 -r 192.168.10.201:9090 -g -w 2
"""
    imported = ipvsadm.import_text(rules, "r")
    [vs] = imported.services
    assert vs.forward == "dr"
    assert vs.real == (lb.RealServer(ep("192.168.10.201", 80), 2, lb.Check()),
                       lb.RealServer(ep("192.168.10.202", 80), 3, lb.Check()))
    assert imported.notes[vs.name] == [
        "line 4: -r 192.168.10.201:9090 -g: direct routing cannot change the port: ipvsadm "
        "gave the server the service's, 80", CHECKED]
    assert problems(rules + "-a -t 192.168.10.200:80 -r 192.168.10.201:80 -g\n") == [
        (5, "-r", "192.168.10.201:80 is already a real server of -t 192.168.10.200:80 "
                  "(line 4)")]


def test_default_scheduler_wlc_becomes_wrr_with_a_note() -> None:
    imported = ipvsadm.import_text("""\
-A -t 192.168.10.200:80
-a -t 192.168.10.200:80 -r 192.168.10.201:80 -m -w 2
""", "r")
    [vs] = imported.services
    assert vs.scheduler == "wrr"
    [note, checked] = imported.notes[vs.name]
    assert note.startswith("no -s: ipvsadm's default wlc; IPVS's 'wlc' counts connections")
    assert checked == CHECKED


def test_named_scheduler_note_and_dh() -> None:
    imported = ipvsadm.import_text("""\
-A -u 192.168.10.200:53 -s LC
-a -u 192.168.10.200:53 -r 192.168.10.201 -m
-A -t 192.168.10.200:80 -s dh
-a -t 192.168.10.200:80 -r 192.168.10.201:8080 -m
""", "r")
    dns, http = imported.services
    assert (dns.protocol, dns.scheduler, dns.real[0].endpoint) == \
        ("udp", "wrr", ep("192.168.10.201", 53))
    assert imported.notes[dns.name][0].startswith("-s LC: IPVS's 'lc' counts connections")
    assert (http.scheduler, http.real[0].endpoint.port) == ("sh", 8080)


def test_persistent_without_a_value_is_300_s_and_the_netmask_a_prefix() -> None:
    imported = ipvsadm.import_text("""\
-A -t 192.168.10.200:443 -s rr -p -M 255.255.255.0
-a -t 192.168.10.200:443 -r 192.168.10.201:443 -m
""", "r")
    [vs] = imported.services
    assert (vs.persistence, vs.persistence_netmask) == (300.0, 24)


def test_netmask_without_persistence_is_dropped() -> None:
    imported = ipvsadm.import_text("""\
-A -t 192.168.10.200:80 -s rr -M 255.255.0.0 -b sh-port
-a -t 192.168.10.200:80 -r 192.168.10.201:80 -m
""", "r")
    [vs] = imported.services
    assert (vs.persistence, vs.persistence_netmask) == (None, None)
    assert imported.dropped == [
        "r:1: -A -t 192.168.10.200:80 -b: scheduler flags: vigil's schedulers have none",
        "r:1: -A -t 192.168.10.200:80 -M: means nothing without -p (persistence)"]


def test_fwmark_service() -> None:
    imported = ipvsadm.import_text("""\
-A -f 1 -s rr -p 60
-a -f 1 -r 192.168.10.201:80 -m -w 2
-a -f 1 -r 192.168.10.202:0 -m
""", "r")
    [vs] = imported.services
    assert vs == lb.VirtualServer(
        name="fwmark-1", group=PLACEHOLDER_GROUP, fwmark=1, protocol="tcp", scheduler="rr",
        persistence=60.0, real=(lb.RealServer(ep("192.168.10.201", 80), 2, lb.Check()),))
    assert imported.notes["fwmark-1"][0].startswith("IPVS balanced every protocol marked 1")
    assert imported.dropped == [
        "r:3: -a -f 1 -r 192.168.10.202:0: port 0 (each packet's own port): vigil's NAT sends "
        "to one port; add it with a port by hand"]


def test_ipv6_services() -> None:
    imported = ipvsadm.import_text("""\
-A -t [fd00::1]:80 -s rr -p 120 -M 128
-a -t [fd00::1]:80 -r [fd00::2]:80 -m -w 1
-a -t [fd00::1]:80 -r [fd00::3] -m -w 1
-A -f 7 -6 -s sh -p 300 -M 64
-a -f 7 -6 -r [fd00::2]:443 -m -w 1
""", "r")
    web6, mark6 = imported.services
    assert web6 == lb.VirtualServer(
        name="vs-fd00--1-80", group=PLACEHOLDER_GROUP, endpoint=ep("fd00::1", 80),
        scheduler="rr", persistence=120.0, persistence_netmask=128,
        real=(lb.RealServer(ep("fd00::2", 80), 1, lb.Check()),
              lb.RealServer(ep("fd00::3", 80), 1, lb.Check())))
    assert (mark6.fwmark, mark6.family, mark6.persistence_netmask) == (7, 6, 64)


def test_udp_service_with_a_port_name() -> None:
    imported = ipvsadm.import_text("""\
-A -u 192.168.10.200:domain -s rr
-a -u 192.168.10.200:domain -r 192.168.10.201:domain -m
""", "r")
    [vs] = imported.services
    assert (vs.protocol, vs.endpoint, vs.real[0].endpoint) == \
        ("udp", ep("192.168.10.200", 53), ep("192.168.10.201", 53))


def test_edits_replace_a_rule_and_deletes_remove_it() -> None:
    imported = ipvsadm.import_text("""\
-A -t 192.168.10.200:80 -s rr -p 60
-a -t 192.168.10.200:80 -r 192.168.10.201:80 -g
-a -t 192.168.10.200:80 -r 192.168.10.202:80 -m
-e -t 192.168.10.200:80 -r 192.168.10.201:80 -m -w 5
-E -t 192.168.10.200:80 -s sh
-d -t 192.168.10.200:80 -r 192.168.10.202:80
-A -t 192.168.10.200:81
-D -t 192.168.10.200:81
""", "r")
    [vs] = imported.services
    assert (vs.scheduler, vs.persistence) == ("sh", None)  # -E replaces all the settings
    assert vs.real == (lb.RealServer(ep("192.168.10.201", 80), 5, lb.Check()),)
    assert imported.dropped == []


def test_thresholds_are_dropped_the_server_kept() -> None:
    imported = ipvsadm.import_text("""\
-A -t 192.168.10.200:80 -s rr
-a -t 192.168.10.200:80 -r 192.168.10.201:80 -m -x 100 -y 0
""", "r")
    assert len(imported.services[0].real) == 1
    assert imported.dropped == [
        "r:2: -a -t 192.168.10.200:80 -r 192.168.10.201:80 -x: connection thresholds: vigil "
        "has none"]


def test_a_host_name_from_ipvsadm_save_without_n_is_refused_on_its_line() -> None:
    saved = """\
-A -t www.example.com:http -s rr
-a -t www.example.com:http -r web1.example.com:http -m -w 1
"""
    assert problems(saved) == [
        (1, "-t", "'www.example.com': a host name: saved without -n? use `ipvsadm-save -n`, "
                  "or an IP address"),
        (2, "-t", "'www.example.com': a host name: saved without -n? use `ipvsadm-save -n`, "
                  "or an IP address")]


def test_every_problem_together_with_its_line() -> None:
    text = """\
-A -t 192.168.10.200:80 -s rr
-a -t 192.168.10.200:8080 -r 192.168.10.201:80 -m
-a -t 192.168.10.200:80 -r 192.168.10.201:80 -m
-a -t 192.168.10.200:80 -r 192.168.10.201:80 -m
-a -t 192.168.10.200:80 -r 192.168.10.202:80 -m -w heavy
-a -t 192.168.10.200:80 -r 192.168.10.203:80 -m --quick
-A -t 192.168.10.200:80 -s rr
-A -t 192.168.10.200:90 -s fastest
-a -t 192.168.10.200:80 -r [fd00::2]:80 -m
-A -t 192.168.10.200 -s rr
-a -t 192.168.10.200:80 -r 192.168.10.204:80 -m -g
iptables -t mangle -A PREROUTING
-A -t 192.168.10.200:91 -p 0 -w 2
"""
    assert problems(text) == [
        (2, "-a", "-t 192.168.10.200:8080: no such service (expected an -A for it on an "
                  "earlier line)"),
        (4, "-r", "192.168.10.201:80 is already a real server of -t 192.168.10.200:80 "
                  "(line 3)"),
        (5, "-w", "'heavy': expected an integer from 0 to 65535"),
        (6, "--quick", "unknown option (expected ipvsadm's -A -E -D -a -e -d -t -u -f -s -p "
                       "-M -r -g -i -m -w -x -y ...)"),
        (7, "-A", "-t 192.168.10.200:80 is already added on line 1"),
        (8, "-s", "unknown scheduler 'fastest' (expected an IPVS scheduler: rr, wrr, lc, wlc, "
                  "sh, dh, mh, sed, nq...)"),
        (9, "-r", "[fd00::2]:80 is IPv6, the service IPv4"),
        (10, "-t", "'192.168.10.200': expected ADDRESS:PORT, IPv6 in brackets"),
        (11, "-m", "expected one of -g, -i or -m"),
        (12, "iptables", "unknown option (expected ipvsadm's -A -E -D -a -e -d -t -u -f -s -p "
                         "-M -r -g -i -m -w -x -y ...)"),
        (13, "-w", "is not an option of -A"),
        (13, "-p", "'0': expected an integer from 1 to 2678400")]


def test_lines_that_are_not_commands() -> None:
    assert problems("-t 192.168.10.200:80 -s rr\n-A -t $VIP:80\n-A -t 'x\n-s\n") == [
        (1, "-t", "expected one command: -A, -E or -D (a service), -a, -e or -d (a real "
                  "server), or -C"),
        (2, "-t", "'$VIP': a shell variable? vigil reads the file, it does not run it: write "
                  "the address"),
        (3, "<syntax>", "cannot split the line as a shell does: No closing quotation"),
        (4, "-s", "expects a value")]


def test_clear_and_other_commands_are_listed_not_carried() -> None:
    imported = ipvsadm.import_text("-C\nipvsadm --set 900 120 300\n-Z\n" + SEED_000, "r")
    assert imported.services == [web()]
    assert [d.split(": ")[:2] for d in imported.dropped] == [
        ["r:1", "ipvsadm -C"], ["r:2", "ipvsadm --set 900 120 300"], ["r:3", "ipvsadm -Z"]]


def test_one_netmask_reader_for_every_lvs_importer() -> None:
    """lvs_import.prefix_length: what ipvsadm's -M, ldirectord's netmask and keepalived's
    persistence_granularity share."""
    from vigil.config.lvs_import import prefix_length
    assert [prefix_length("255.255.255.0"), prefix_length("24", 4), prefix_length("64", 6),
            prefix_length("128")] == [24, 24, 64, 128]
    for text, family in (("33", 4), ("255.255.255.0", 6), ("129", None), ("-1", None),
                         ("255.0.255.0", 4), ("banana", None)):
        with pytest.raises(ValueError, match="expected a netmask such as 255.255.255.0"):
            prefix_length(text, family)
