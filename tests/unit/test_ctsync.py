"""[conntrack_sync]: what reads, each mistake named; and the conntrackd.conf it becomes."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tests.unit.test_config_virtual import BASE, VS, problems
from vigil.balancer import ctsync, ctsync_run
from vigil.balancer.model import ConnSync
from vigil.config.toml import parse

TWO_LINKS = BASE.replace('address = "10.0.0.1"', 'address = ["10.0.0.1", "10.0.1.1"]') \
    .replace('address = "10.0.0.2"', 'address = ["10.0.0.2", "10.0.1.2"]')


def test_the_sync_reads_with_its_defaults_and_takes_the_last_address() -> None:
    c = parse(TWO_LINKS + VS + "\n[conntrack_sync]\n")
    assert c.conntrack_sync == ConnSync(link=1, port=3780, interface=None)
    c = parse(TWO_LINKS + VS + '\n[conntrack_sync]\nlink = 1\nport = 3781\ninterface = "eth1"\n')
    assert c.conntrack_sync == ConnSync(link=0, port=3781, interface="eth1")
    assert parse(TWO_LINKS + VS).conntrack_sync is None


@pytest.mark.parametrize("text, key, words", [
    (TWO_LINKS + VS + "\n[conntrack_sync]\nlink = 3\n", "conntrack_sync.link",
     "have 2 address"),
    (TWO_LINKS + VS + "\n[conntrack_sync]\nport = 0\n", "conntrack_sync.port", "0"),
    (TWO_LINKS + VS + "\n[conntrack_sync]\ncolour = 1\n", "conntrack_sync.colour",
     "unknown key"),
    (TWO_LINKS + VS + '\n[conntrack_sync]\ninterface = "a/b"\n', "conntrack_sync.interface",
     "interface name"),
    (TWO_LINKS + "\n[conntrack_sync]\n", "conntrack_sync", "no [[virtual_server]]"),
    ("conntrack_sync = 1\n" + TWO_LINKS + VS, "conntrack_sync", "table"),
])
def test_each_mistake_is_named(text: str, key: str, words: str) -> None:
    found = problems(text)
    assert any(f" {key}:" in p and words in p and "vigil.toml:" in p for p in found), found


def test_the_daemon_refuses_a_sync_without_conntrackd(monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.daemon import main
    c = parse(TWO_LINKS + VS + "\n[conntrack_sync]\n")
    monkeypatch.setattr(main.shutil, "which", lambda name: None if name == "conntrackd"
                        else "/usr/sbin/" + name)
    with pytest.raises(Exception, match="conntrackd.*not installed"):
        main.check(c, "n1")
    main.check(parse(TWO_LINKS + VS), "n1")


def test_each_node_syncs_to_the_other_ignoring_the_nodes_own_addresses(tmp_path: Path) -> None:
    c = parse(TWO_LINKS + VS + '\n[conntrack_sync]\ninterface = "eth1"\n')
    n1 = ctsync_run.for_node(c, "n1", tmp_path / "n1")
    n2 = ctsync_run.for_node(c, "n2", tmp_path / "n2")
    assert n1 is not None and n2 is not None
    assert "IPv4_address 10.0.1.1\n" in n1.config
    assert "IPv4_Destination_Address 10.0.1.2\n" in n1.config
    assert "IPv4_address 10.0.1.2\n" in n2.config and "Interface eth1\n" in n2.config
    for conf in (n1.config, n2.config):
        ignored = [line.split()[1] for line in conf.splitlines()
                   if line.strip().startswith(("IPv4_address", "IPv6_address"))
                   and line.startswith(" " * 12)]
        assert ignored == ["10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2", "127.0.0.1", "::1"]
        assert "Mode FTFW" in conf and "TCPWindowTracking Off" in conf
        assert "Protocol Accept {\n            TCP\n" in conf
        # The virtual address is never ignored: the synced connections are to it.
        assert "192.168.10.200" not in conf
    assert f"Path {tmp_path / 'n1' / 'conntrackd.ctl'}\n" in n1.config
    assert f"LockFile {tmp_path / 'n1' / 'conntrackd.lock'}\n" in n1.config
    assert ctsync_run.for_node(parse(TWO_LINKS + VS), "n1", tmp_path) is None


def test_ipv6_and_udp_render_and_two_families_do_not() -> None:
    a, b = ipaddress.ip_address("fd00::1"), ipaddress.ip_address("fd00::2")
    conf = ctsync.render(a, b, 3780, None, ["udp", "tcp"], [], ctsync.Paths(Path("/x")))
    assert "IPv6_address fd00::1\n" in conf and "IPv6_Destination_Address fd00::2\n" in conf
    assert "TCP UDP" in conf and "Interface" not in conf
    with pytest.raises(ValueError, match="two families"):
        ctsync.render(a, ipaddress.ip_address("10.0.0.1"), 3780, None, ["tcp"], [],
                      ctsync.Paths(Path("/x")))
