"""[[virtual_server]] in vigil.toml: what reads, and every mistake named by file, line, key."""

from __future__ import annotations

import ipaddress

import pytest

from vigil.balancer.model import Check, Endpoint
from vigil.config.toml import parse
from vigil.errors import ConfigError

BASE = """
[cluster]
name = "c"
key_file = "/etc/vigil/key"

[[node]]
name = "n1"
address = "10.0.0.1"

[[node]]
name = "n2"
address = "10.0.0.2"

[[group]]
name = "web"
home = "n1"
[[group.resource]]
type = "ip"
address = "192.168.10.200/24"
interface = "eth0"
"""

VS = """
[[virtual_server]]
name = "web"
address = "192.168.10.200:80"
scheduler = "wrr"
persistence = "300s"
persistence_netmask = 24
quorum = 1
sorry_server = "127.0.0.1:8080"
group = "web"
[virtual_server.check]
type = "http"
path = "/health"
expect_status = [200]
expect_body = "ok"
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2
[[virtual_server.real]]
address = "192.168.10.201:80"
weight = 1
[[virtual_server.real]]
address = "192.168.10.202:80"
weight = 3
[virtual_server.real.check]
timeout = "200ms"
"""


def test_the_issues_example_reads() -> None:
    (vs,) = parse(BASE + VS).virtual_servers
    assert vs.endpoint == Endpoint(ipaddress.ip_address("192.168.10.200"), 80)
    assert (vs.scheduler, vs.forward, vs.persistence, vs.persistence_netmask) == \
        ("wrr", "nat", 300.0, 24)
    assert vs.sorry_server == Endpoint(ipaddress.ip_address("127.0.0.1"), 8080)
    assert [r.weight for r in vs.real] == [1, 3]
    assert vs.real[0].check == Check(type="http", path="/health", expect_body="ok",
                                     interval=1.0, timeout=0.5)
    assert vs.real[1].check.timeout == 0.2 and vs.real[1].check.path == "/health"


def test_a_cluster_without_virtual_servers_has_none() -> None:
    assert parse(BASE).virtual_servers == ()


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse(text, "vigil.toml")
    return [str(p) for p in e.value.problems]


@pytest.mark.parametrize("change, key, words", [
    (("weight = 1", "weight = 1\ncolour = 2"), "virtual_server[0].real[0].colour",
     "unknown key"),
    (('address = "192.168.10.201:80"', 'address = "192.168.10.200:80"'),
     "virtual_server[0].real[0].address", "own address"),
    (('address = "192.168.10.201:80"', 'address = "192.168.10.201:0"'),
     "virtual_server[0].real[0].address", "port 0"),
    (('address = "192.168.10.202:80"', 'address = "192.168.10.201:80"'),
     "virtual_server[0].real[1].address", "twice"),
    (('address = "192.168.10.201:80"', 'address = "[fd00::1]:80"'),
     "virtual_server[0].real[0].address", "IPv6"),
    (('scheduler = "wrr"', 'scheduler = "wlc"'), "virtual_server[0].scheduler",
     "least-connection"),
    (('scheduler = "wrr"', 'scheduler = "fastest"'), "virtual_server[0].scheduler",
     "unknown scheduler"),
    (('scheduler = "wrr"', 'forward = "dr"'), "virtual_server[0].sorry_server",
     "must answer on 80"),
    (('scheduler = "wrr"', 'interface = "eth0"'), "virtual_server[0].interface",
     "means nothing with forward = \"nat\""),
    (('scheduler = "wrr"', 'forward = "dr"\ninterface = "a b"'),
     "virtual_server[0].interface", "not a Linux interface name"),
    (('group = "web"', 'group = "db"'), "virtual_server[0].group", "not a group"),
    (("quorum = 1", "quorum = 3"), "virtual_server[0].quorum", "more than its 2"),
    (('timeout = "500ms"', 'timeout = "2s"'), "virtual_server[0].check.timeout",
     "longer than the interval"),
    (('expect_body = "ok"', 'expect_body = "(ok"'), "virtual_server[0].check.expect_body",
     "not a regular expression"),
    (("persistence_netmask = 24", "persistence_netmask = 33"),
     "virtual_server[0].persistence_netmask", "33"),
    (('type = "http"', 'type = "exec"'), "virtual_server[0].check.command", "needs its command"),
    (('address = "192.168.10.200:80"', 'fwmark = 1\naddress = "192.168.10.200:80"'),
     "virtual_server[0]", "either address or fwmark"),
])
def test_each_mistake_is_named(change: tuple[str, str], key: str, words: str) -> None:
    found = problems(BASE + VS.replace(*change, 1))
    assert any(f" {key}:" in p and words in p and "vigil.toml:" in p for p in found), found


def test_two_services_on_one_address_are_refused() -> None:
    found = problems(BASE + VS + VS.replace('name = "web"', 'name = "web2"', 1))
    assert any("virtual_server[1].address" in p and "same service" in p for p in found)
    assert not any("defined twice" in p for p in found)


def test_the_daemon_refuses_virtual_servers_without_nft(monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.daemon import main
    main.check(parse(BASE + VS), "n1")
    monkeypatch.setattr(main.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="`nft` is not installed"):
        main.check(parse(BASE + VS), "n1")
    main.check(parse(BASE), "n1")


DR = VS.replace('scheduler = "wrr"', 'forward = "dr"\ninterface = "eth0"', 1) \
    .replace("127.0.0.1:8080", "127.0.0.1:80")


def test_direct_routing_reads_with_its_interface() -> None:
    (vs,) = parse(BASE + DR).virtual_servers
    assert vs.forward == "dr" and vs.interface == "eth0"
    assert vs.sorry_server == Endpoint(ipaddress.ip_address("127.0.0.1"), 80)


@pytest.mark.parametrize("change, key, words", [
    (('address = "192.168.10.202:80"', 'address = "192.168.10.202:8080"'),
     "virtual_server[0].real[1].address", "cannot change the port"),
    (('address = "192.168.10.200:80"', 'fwmark = 1'), "virtual_server[0].fwmark",
     "before any mark is set"),
])
def test_direct_routing_mistakes_are_named(change: tuple[str, str], key: str,
                                           words: str) -> None:
    found = problems(BASE + DR.replace(*change, 1))
    assert any(f" {key}:" in p and words in p for p in found), found


def test_nat_real_servers_on_the_virtual_address_s_network_are_warned_of() -> None:
    """Seed 000's setup: the VIP 192.168.10.200/24 and NAT real servers .201 and .202 on
    the same /24. Clients there get the servers' answers directly and drop them."""
    from vigil.model import nat_warnings
    c = parse(BASE + VS, "vigil.toml")
    found = nat_warnings(c)
    assert len(found) == 2
    assert found[0].startswith("virtual server 'web': real server 192.168.10.201:80 is on "
                               "192.168.10.0/24, the network of the virtual address "
                               "192.168.10.200: with forward = \"nat\" clients on that "
                               "network get its answers directly"), found[0]
    behind = VS.replace("192.168.10.201", "10.9.0.1").replace("192.168.10.202", "10.9.0.2")
    assert nat_warnings(parse(BASE + behind, "vigil.toml")) == []
    dr = VS.replace('scheduler = "wrr"', 'scheduler = "wrr"\nforward = "dr"').replace(
        '127.0.0.1:8080', '127.0.0.1:80')
    assert nat_warnings(parse(BASE + dr, "vigil.toml")) == [], "direct routing wants that"
