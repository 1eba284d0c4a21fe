"""vigil.config.keepalived: keepalived.conf -> vigil groups, timings and commented vigil.toml.

Seed 004 (/work/shared/seeds/004_*.txt, "Linux服务器双机热备详细过程") describes a keepalived +
tomcat pair: master 192.168.8.4, backup 192.168.8.6, virtual IP 192.168.8.100, VRRP between
them, and a secondary address added with `ip addr add 192.168.31.5/24 brd 192.168.31.255 dev
enp0s3 label enp0s3:1`. It holds no keepalived.conf text itself, so the SEED_004_* fragments
below are that setup written out as its two keepalived.conf files; the others are written in
the shapes keepalived's own samples use (sync groups, local checks, LVS, IPv6).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil import model
from vigil.config import export, keepalived, toml
from vigil.errors import ConfigError, ConfigProblem

# Seed 004: node A 192.168.8.4 (master), node B 192.168.8.6 (backup), VIP 192.168.8.100,
# tomcat behind it. The master's file:
SEED_004_MASTER = """\
! Configuration File for keepalived
global_defs {
   notification_email {
     root@localhost
   }
   router_id tomcat_A
}

vrrp_script chk_tomcat {
    script "killall -0 java"      # tomcat runs in a JVM
    interval 2
    weight -20
    fall 3
    rise 2
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    unicast_src_ip 192.168.8.4
    unicast_peer {
        192.168.8.6
    }
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    track_script {
        chk_tomcat
    }
    virtual_ipaddress {
        192.168.8.100/24 dev eth0 label eth0:1
    }
    notify_master "/etc/keepalived/notify.sh master"
}
"""

# Seed 004, the backup's file: the same instance, state BACKUP, lower priority, swapped
# unicast addresses.
SEED_004_BACKUP = SEED_004_MASTER.replace("router_id tomcat_A", "router_id tomcat_B") \
    .replace("state MASTER", "state BACKUP").replace("priority 100", "priority 90") \
    .replace("unicast_src_ip 192.168.8.4", "unicast_src_ip 192.168.8.X") \
    .replace("        192.168.8.6\n", "        192.168.8.4\n") \
    .replace("192.168.8.X", "192.168.8.6")

# Seed 004's secondary address, `ip addr add 192.168.31.5/24 brd 192.168.31.255 dev enp0s3
# label enp0s3:1`, as keepalived takes it (the same options as `ip addr add`).
SEED_004_SECONDARY = """\
vrrp_instance VI_1 {
    state MASTER
    interface enp0s3
    virtual_router_id 31
    priority 150
    virtual_ipaddress {
        192.168.31.5/24 brd 192.168.31.255 dev enp0s3 label enp0s3:1
    }
}
"""

# Multicast (no unicast_peer), default prefixes, two instances: this machine is master of
# one and backup of the other (active/active), nopreempt on one of them.
MULTICAST = """\
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    garp_master_delay 10
    smtp_alert
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        192.168.200.16
        192.168.200.17
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 50
    priority 50
    advert_int 2
    nopreempt
    preempt_delay 300
    virtual_ipaddress {
        192.168.200.13
    }
}
"""

SYNC = """\
vrrp_sync_group G1 {
  group {
    VI_1
    VI_2
  }
  notify_master "/usr/local/bin/vrrp.mast arg1 arg2"
}
vrrp_instance VI_1 {
    interface eth0
    state MASTER
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.168.200.18/25
    }
}
vrrp_instance VI_2 {
    interface eth1
    state MASTER
    virtual_router_id 52
    priority 100
    virtual_ipaddress {
        192.168.201.18/26
    }
}
vrrp_instance VI_3 {
    interface eth0
    virtual_router_id 53
    priority 100
    virtual_ipaddress {
        192.168.200.19/27
    }
}
"""

CHECKS = """\
vrrp_script chk_http_port {
    script "</dev/tcp/127.0.0.1/80"   # a bash redirection: needs a shell
    interval 1
    timeout 3
    weight -2
}
vrrp_script chk_sshd {
    script "/usr/bin/killall -0 sshd"
    interval 2
    fall 2
}
vrrp_script chk_backup_only {
    script /usr/local/bin/is-backup
    weight 0 reverse
}
vrrp_script chk_unused {
    script /bin/false
}
vrrp_instance VI_1 {
    interface eth0
    state MASTER
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        10.1.1.10/24
    }
    track_interface {
       eth1 weight 2
       eth3
    }
    track_script {
       chk_http_port
       chk_sshd weight 4
       chk_backup_only
    }
}
"""

LVS_ONLY = """\
global_defs {
   router_id LVS_DEVEL
}
virtual_server 10.10.10.2 1358 {
    delay_loop 6
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 192.168.200.2 1358 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
        }
    }
    real_server 192.168.200.3 1358 {
        weight 1
    }
}
"""

IPV6 = """\
vrrp_instance V6 {
    state BACKUP
    interface eth0
    virtual_router_id 60
    priority 120
    advert_int 0.1
    unicast_src_ip fd00::2
    unicast_peer {
        fd00::1
    }
    virtual_ipaddress {
        fd00::100
        fd00::101/64 dev eth1
    }
}
"""


def imported(text: str, source: str = "keepalived.conf") -> tuple[model.Cluster, str, list[str]]:
    cluster, out, dropped = keepalived.import_text(text, source)
    assert cluster is not None
    # The text is the configuration: it parses to the same cluster, with the key file it names.
    again = toml.parse(out, "vigil.toml")
    assert again.key_file == export.KEY_FILE
    assert f'key_file = "{export.KEY_FILE}"' in out
    assert dataclasses.replace(again, source=cluster.source) == cluster
    return cluster, out, dropped


def said(out: str) -> str:
    """The comments of a vigil.toml text as one line, whatever their wrapping."""
    return " ".join(" ".join(line.lstrip("#").split()) for line in out.splitlines()
                    if line.startswith("#"))


def what(dropped: list[str]) -> list[str]:
    """Each not-carried-over entry without its reason: `line: block keyword`."""
    return [":".join(d.split(":")[1:3]).strip() for d in dropped]


def ips(group: model.Group) -> list[tuple[str, str, str | None]]:
    return [(r.address.with_prefixlen, r.interface, r.label) for r in group.resources
            if isinstance(r, model.IpResource)]


def problems(text: str, source: str = "k.conf") -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        keepalived.import_text(text, source)
    return info.value.problems


def where(text: str) -> set[tuple[str, int | None, str]]:
    return {(p.file, p.line, p.key) for p in problems(text)}


# --- golden imports ------------------------------------------------------------------------


def test_seed_004_master() -> None:
    cluster, out, dropped = imported(SEED_004_MASTER)
    assert [n.name for n in cluster.nodes] == ["node-192-168-8-4", "node-192-168-8-6"]
    assert [n.addresses for n in cluster.nodes] == [(ipaddress.ip_address("192.168.8.4"),),
                                                    (ipaddress.ip_address("192.168.8.6"),)]
    assert cluster.links == ()
    (group,) = cluster.groups
    assert (group.name, group.home) == ("VI_1", "node-192-168-8-4")
    assert ips(group) == [("192.168.8.100/24", "eth0", "eth0:1")]
    check = group.resources[0]
    assert check == model.ExecResource(
        start=("/usr/bin/env", "killall", "-0", "java"), stop=("/bin/true",),
        status=("/usr/bin/env", "killall", "-0", "java"), timeout=2.0,
        monitor=model.Monitor(2.0, 2.0))
    assert group.policy.migration_threshold == 3  # fall 3
    # deadtime: VRRP's Master_Down_Interval, 3 x 1s + (256 - 100) / 256 x 1s
    assert cluster.timings == model.Timings(keepalive=1.0, warntime=2.0, deadtime=3.609,
                                            initdead=3.609)
    assert cluster.auto_failback is True
    assert what(dropped) == ["2: global_defs (notification_email, router_id)",
                             "27: vrrp_instance VI_1 authentication (auth_type PASS)",
                             "37: vrrp_instance VI_1 notify_master"]
    notes = said(out)
    assert "vigil keygen /etc/vigil/authkey" in notes
    assert "VI_1: notify_master /etc/keepalived/notify.sh master (keepalived.conf:37)" in notes
    assert "virtual_router_id 51" in notes
    assert "weight -20 changed keepalived's priority" in notes
    assert "killall is not an absolute path: carried as /usr/bin/env killall" in notes


def test_seed_004_backup_imports_to_the_same_cluster() -> None:
    master, _, _ = imported(SEED_004_MASTER)
    backup, out, _ = imported(SEED_004_BACKUP)
    assert backup.groups[0].home == "node-192-168-8-4"  # state BACKUP: the peer is home
    assert 'set home = "node-192-168-8-6"' in said(out)  # ...if this machine's priority is higher
    # priority 90 makes keepalived's skew a little longer: deadtime 3 + 166/256 s
    assert backup.timings.deadtime == 3.648
    same = dataclasses.replace(backup, timings=master.timings)
    assert same == master


def test_seed_004_secondary_address_keeps_its_label_and_broadcast() -> None:
    cluster, _, dropped = imported(SEED_004_SECONDARY)
    assert [n.name for n in cluster.nodes] == ["backup", "master"]
    assert cluster.groups[0].home == "master"
    assert ips(cluster.groups[0]) == [("192.168.31.5/24", "enp0s3", "enp0s3:1")]
    assert dropped == []  # brd 192.168.31.255 is what vigil sets for a /24 anyway
    assert cluster.links == (model.ExtraLink("mcast", "enp0s3", ipaddress.ip_address(
        "239.0.0.31")),)


def test_multicast_instances_default_prefix_and_failback() -> None:
    cluster, out, dropped = imported(MULTICAST)
    assert [n.name for n in cluster.nodes] == ["backup", "master"]
    assert all(n.addresses == () for n in cluster.nodes)
    assert cluster.links == (model.ExtraLink("mcast", "eth0", ipaddress.ip_address(
        "239.0.0.51")),)
    g1, g2 = cluster.groups
    assert (g1.name, g1.home, g2.name, g2.home) == ("VI_1", "master", "VI_2", "backup")
    assert ips(g1) == [("192.168.200.16/32", "eth0", None), ("192.168.200.17/32", "eth0", None)]
    assert ips(g2) == [("192.168.200.13/32", "eth0", None)]
    assert g1.resources[0].arp.repeat_delay == 10.0  # type: ignore[union-attr]
    # the shortest advert_int wins; VI_2's nopreempt turns failback off for every group
    assert (cluster.timings.keepalive, cluster.timings.deadtime) == (1.0, 3.609)
    assert cluster.auto_failback is False
    notes = said(out)
    assert "preempt_delay 300 (VI_2)" in notes and "The instances' advert_int differ" in notes
    assert "192.168.200.16/32, 192.168.200.17/32: keepalived's default prefix /32" in notes
    assert what(dropped) == ["5: vrrp_instance VI_1 smtp_alert"]


def test_sync_group_becomes_one_group() -> None:
    cluster, out, dropped = imported(SYNC)
    g1, g3 = cluster.groups
    assert (g1.name, g1.home) == ("G1", "master")
    assert ips(g1) == [("192.168.200.18/25", "eth0", None), ("192.168.201.18/26", "eth1", None)]
    assert (g3.name, g3.home, ips(g3)) == ("VI_3", "backup", [("192.168.200.19/27", "eth0",
                                                                 None)])
    assert [link.interface for link in cluster.links] == ["eth0", "eth1"]  # type: ignore[union-attr]
    assert what(dropped) == ["6: vrrp_sync_group G1 notify_master"]
    assert "G1: notify_master /usr/local/bin/vrrp.mast arg1 arg2" in said(out)


def test_track_scripts() -> None:
    cluster, out, dropped = imported(CHECKS)
    (group,) = cluster.groups
    http, sshd = group.resources[:2]
    assert http == model.ExecResource(
        start=("/bin/sh", "-c", "</dev/tcp/127.0.0.1/80"), stop=("/bin/true",),
        status=("/bin/sh", "-c", "</dev/tcp/127.0.0.1/80"), timeout=3.0,
        monitor=model.Monitor(1.0, 3.0))
    assert isinstance(sshd, model.ExecResource)
    assert sshd.status == ("/usr/bin/killall", "-0", "sshd")
    assert group.policy.migration_threshold == 1  # the smaller fall
    assert ips(group) == [("10.1.1.10/24", "eth0", None)]
    assert what(dropped) == ["16: vrrp_script chk_unused",
                             "27: vrrp_instance VI_1 track_interface eth1 eth3",
                             "34: vrrp_instance VI_1 track_script chk_backup_only (reverse)"]
    assert "needs a shell" in said(out) and "weight +4 changed keepalived's priority" in said(out)


def test_lvs_only_gives_the_virtual_servers_alone_in_a_placeholder_group() -> None:
    cluster, out, dropped = keepalived.import_text(LVS_ONLY, "lvs.conf")
    assert cluster is None
    assert what(dropped) == ["1: global_defs (router_id)"]
    assert "only the virtual servers" in said(out) and "placeholder" in said(out)
    fragment = toml.tomllib.loads(out)["virtual_server"]
    assert fragment == [{
        "name": "vs-10-10-10-2-1358", "address": "10.10.10.2:1358", "scheduler": "rr",
        "group": "lvs", "check": {"interval": "6s", "timeout": "3s", "rise": 1},
        "real": [{"address": "192.168.200.2:1358"},
                 {"address": "192.168.200.3:1358", "check": {"type": "none",
                                                             "timeout": "5s"}}]}]


def test_ipv6_unicast_and_fractional_advert_int() -> None:
    cluster, _, _ = imported(IPV6)
    assert [n.name for n in cluster.nodes] == ["node-fd00--1", "node-fd00--2"]
    assert cluster.groups[0].home == "node-fd00--1"
    assert ips(cluster.groups[0]) == [("fd00::100/128", "eth0", None),
                                      ("fd00::101/64", "eth1", None)]
    # 3 x 0.1s + (256 - 120) / 256 x 0.1s
    assert cluster.timings == model.Timings(0.1, 0.2, 0.353, 0.353)


def test_lvs_beside_vrrp_and_unknown_keywords_are_listed() -> None:
    text = SEED_004_SECONDARY.replace("priority 150", "priority 150\n    frobnicate 3\n"
                                      "    use_vmac\n") + LVS_ONLY
    cluster, _, dropped = imported(text)
    assert len(cluster.groups) == 1
    assert what(dropped) == ["6: vrrp_instance VI_1 frobnicate",
                             "7: vrrp_instance VI_1 use_vmac",
                             "13: global_defs (router_id)"]
    assert "unknown keyword in vrrp_instance" in dropped[0]
    # No group holds 10.10.10.2: the only group gets it, and the file says so.
    assert [(vs.name, vs.group) for vs in cluster.virtual_servers] == \
        [("vs-10-10-10-2-1358", cluster.groups[0].name)]


def test_gratuitous_arp_settings_are_carried() -> None:
    text = ("global_defs {\n    vrrp_garp_master_repeat 2\n    vrrp_garp_interval 0.05\n}\n"
            + SEED_004_SECONDARY.replace("priority 150", "priority 150\n"
                                         "    garp_master_delay 0\n    garp_master_refresh 60"))
    cluster, _, dropped = imported(text)
    ip = cluster.groups[0].resources[0]
    assert isinstance(ip, model.IpResource)
    assert ip.arp == model.ArpSettings(count=2, interval=0.05, repeat_delay=0.0,
                                       repeat_count=2, refresh=60.0)
    assert dropped == []  # global_defs held only what was carried


@pytest.mark.parametrize(("state", "priority", "this"), [
    ("MASTER", 100, "master"), ("BACKUP", 100, "backup"), (None, 50, "backup"),
    ("BACKUP", 255, "master"),  # priority 255: the address owner, master whatever its state
])
def test_this_machine_is_master_by_state_or_as_address_owner(state: str | None, priority: int,
                                                             this: str) -> None:
    body = (f"    state {state}\n" if state else "") + f"    priority {priority}\n"
    text = VI.format(body=body + "    virtual_ipaddress {\n        10.0.0.9/24\n    }\n")
    cluster, out, _ = imported(text)
    assert f"this node is called {this!r}" in said(out)
    # With no unicast addresses the nodes are named after this file's role, so the home of
    # the first group is always the one called master.
    assert cluster.groups[0].home == "master"


def test_unicast_peer_without_source_falls_back_to_multicast() -> None:
    text = VI.format(body="    unicast_peer {\n        10.0.0.2\n    }\n"
                          "    virtual_ipaddress {\n        10.0.0.9/24\n    }\n")
    cluster, out, _ = imported(text)
    assert all(n.addresses == () for n in cluster.nodes)
    assert [link.mode for link in cluster.links] == ["mcast"]
    assert "the file does not say this node's address" in said(out)


def test_sync_group_level_checks_and_hooks() -> None:
    text = CHECKS.split("vrrp_instance")[0] + SYNC.replace(
        '  notify_master "/usr/local/bin/vrrp.mast arg1 arg2"\n',
        "  notify_fault /usr/local/bin/fault\n  track_script {\n    chk_sshd\n  }\n")
    cluster, out, dropped = imported(text)
    g1 = cluster.groups[0]
    assert isinstance(g1.resources[0], model.ExecResource)
    assert g1.resources[0].status == ("/usr/bin/killall", "-0", "sshd")
    assert g1.policy.migration_threshold == 2
    assert "G1: notify_fault /usr/local/bin/fault" in said(out)
    assert any("vrrp_sync_group G1 notify_fault" in d for d in dropped)


def test_problems_in_an_included_file_name_that_file(tmp_path: Path) -> None:
    (tmp_path / "vi.conf").write_text(VI.format(body="    priority 0\n"))
    (tmp_path / "keepalived.conf").write_text("! main\ninclude vi.conf\n")
    with pytest.raises(ConfigError) as info:
        keepalived.import_file(tmp_path / "keepalived.conf")
    (p,) = info.value.problems
    assert (p.file, p.line, p.key) == (str(tmp_path / "vi.conf"), 3, "vrrp_instance VI_1.priority")


def test_syntax_variants() -> None:
    text = ('vrrp_instance "VI 1"{ # a comment { with braces }\n'
            "    state MASTER ! keepalived's other comment\n"
            "    interface \\\n"
            "        eth0\n"
            "    virtual_ipaddress\n"
            "    {\n"
            "        10.0.0.5/24 dev 'eth0' label eth0:web\n"
            "    }\n"
            "}\n")
    cluster, _, _ = imported(text)
    (group,) = cluster.groups
    assert group.name == "VI-1"  # not a vigil name as it was
    assert ips(group) == [("10.0.0.5/24", "eth0", "eth0:web")]
    tree = keepalived.parse(text)
    assert tree[0].keyword == "vrrp_instance" and tree[0].args == ("VI 1",)
    assert tree[0].block is not None and tree[0].block[1] == keepalived.Statement(
        "interface", ("eth0",), "<memory>", 3)


def test_includes_are_followed_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "vi1.conf").write_text(SEED_004_SECONDARY)
    (tmp_path / "keepalived.conf").write_text("include conf.d/*.conf\ninclude none.d/*.conf\n")
    cluster, _, dropped = keepalived.import_file(tmp_path / "keepalived.conf")
    assert cluster is not None and cluster.groups[0].name == "VI_1"
    assert what(dropped) == ["2: include none.d/*.conf"]

    (tmp_path / "loop.conf").write_text("include loop.conf\n")
    with pytest.raises(ConfigError) as info:
        keepalived.import_file(tmp_path / "loop.conf")
    assert (info.value.problems[0].line, info.value.problems[0].key) == (1, "include")
    (tmp_path / "missing.conf").write_text("\ninclude nothere.conf\n")
    with pytest.raises(ConfigError) as info:
        keepalived.import_file(tmp_path / "missing.conf")
    assert info.value.problems[0].line == 2 and "no such file" in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        keepalived.import_file(tmp_path / "absent.conf")
    (tmp_path / "latin1.conf").write_bytes(b"! caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        keepalived.import_file(tmp_path / "latin1.conf")


# --- bad input -----------------------------------------------------------------------------

VI = "vrrp_instance VI_1 {{\n    interface eth0\n{body}}}\n"


@pytest.mark.parametrize(("text", "line", "key"), [
    ("vrrp_instance VI_1 {\n    interface eth0\n", 1, "vrrp_instance VI_1"),  # never closed
    ("global_defs {\n}\n}\n", 3, "<syntax>"),  # one '}' too many
    ("{\n", 1, "<syntax>"),
    ("vrrp_instance VI_1 {\n  state MASTER\n}\nfoo_block {\n}\n", 4, "foo_block"),
    ("hello world\n", 1, "hello"),
    ('vrrp_script x {\n  script "/bin/true\n}\n', 2, "<syntax>"),  # unterminated quote
    ("$IF=eth0\n", 1, "$IF=eth0"),
    ("@node1 vrrp_instance VI_1 {\n}\n", 1, "@node1"),
    ("include other.conf\n", 1, "include"),  # text without a file: include refused
    ("x\x00y\n", 1, "<syntax>"),
    (VI.format(body="    priority 300\n"), 3, "vrrp_instance VI_1.priority"),
    (VI.format(body="    priority high\n"), 3, "vrrp_instance VI_1.priority"),
    (VI.format(body="    advert_int -1\n"), 3, "vrrp_instance VI_1.advert_int"),
    (VI.format(body="    advert_int 0.001\n"), 3, "vrrp_instance VI_1.advert_int"),
    (VI.format(body="    virtual_router_id 0\n"), 3, "vrrp_instance VI_1.virtual_router_id"),
    (VI.format(body="    state LEADER\n"), 3, "vrrp_instance VI_1.state"),
    (VI.format(body="    virtual_ipaddress {\n        192.168.1.300/24\n    }\n"), 4,
     "vrrp_instance VI_1.virtual_ipaddress"),
    (VI.format(body="    virtual_ipaddress {\n        10.0.0.1 10.0.0.2\n    }\n"), 4,
     "vrrp_instance VI_1.virtual_ipaddress"),
    (VI.format(body="    virtual_ipaddress {\n        224.0.0.18\n    }\n"), 4,
     "vrrp_instance VI_1.virtual_ipaddress"),
    (VI.format(body="    virtual_ipaddress {\n        10.0.0.1 dev\n    }\n"), 4,
     "vrrp_instance VI_1.virtual_ipaddress"),
    (VI.format(body="    virtual_ipaddress 10.0.0.1\n"), 3,
     "vrrp_instance VI_1.virtual_ipaddress"),
    (VI.format(body="    unicast_src_ip 10.0.0.999\n"), 3,
     "vrrp_instance VI_1.unicast_src_ip"),
    (VI.format(body="    unicast_peer {\n        10.0.0.2\n        10.0.0.3\n    }\n"), 3,
     "vrrp_instance VI_1.unicast_peer"),
    (VI.format(body="    track_script {\n        chk_missing\n    }\n"), 4,
     "vrrp_instance VI_1.track_script"),
    ("vrrp_instance VI_1 {\n    virtual_ipaddress {\n        10.0.0.1\n    }\n}\n", 3,
     "vrrp_instance VI_1.virtual_ipaddress"),  # no interface for the address
    ("vrrp_script s {\n    interval 2\n}\n", 1, "vrrp_script s.script"),
    ("vrrp_script s {\n    script /bin/true\n    weight 999\n}\n", 3, "vrrp_script s.weight"),
    ("vrrp_sync_group G {\n    group {\n        VI_9\n    }\n}\n", 3, "vrrp_sync_group G.group"),
])
def test_bad_input_names_file_line_and_keyword(text: str, line: int, key: str) -> None:
    found = where(text)
    assert ("k.conf", line, key) in found, found


def test_every_problem_is_reported_at_once() -> None:
    text = VI.format(body="    priority 0\n    advert_int x\n    state foo\n")
    assert {p.line for p in problems(text)} == {3, 4, 5}


def test_an_address_used_twice_is_refused() -> None:
    text = SEED_004_SECONDARY + SEED_004_SECONDARY.replace("VI_1", "VI_2")
    assert ("k.conf", 16, "vrrp_instance VI_2.virtual_ipaddress") in where(text)
    text = SEED_004_MASTER.replace("192.168.8.100/24", "192.168.8.6/24")
    assert any("heartbeat address" in p.message for p in problems(text))


def test_a_third_node_is_refused() -> None:
    text = SEED_004_MASTER + SEED_004_SECONDARY.replace("VI_1", "VI_2").replace(
        "priority 150", "unicast_src_ip 192.168.8.4\n    unicast_peer {\n        192.168.8.7\n"
                        "    }")
    assert any("exactly two nodes" in p.message for p in problems(text))


# --- nothing but ConfigError, whatever the text ---------------------------------------------

WORDS = ["vrrp_instance", "vrrp_script", "vrrp_sync_group", "global_defs", "virtual_server",
         "real_server", "state", "MASTER", "BACKUP", "interface", "eth0", "eth1:x", "priority",
         "advert_int", "virtual_router_id", "virtual_ipaddress", "unicast_src_ip",
         "unicast_peer", "track_script", "track_interface", "script", "weight", "fall", "rise",
         "interval", "timeout", "reverse", "nopreempt", "preempt_delay", "authentication",
         "auth_type", "PASS", "group", "notify_master", "dev", "label", "brd", "scope",
         "garp_master_delay", "garp_master_repeat", "VI_1", "VI_2", "chk", "10.0.0.1",
         "10.0.0.2/24", "fd00::1", "999.1.1.1", "0", "1", "-3", "255", "256", "0.5", "1e9",
         "{", "}", "\n", "#", "!", '"', "'", "\\", "/bin/sh -c", "$X=1", "@n", "include", "x"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=80))
def test_token_soup_raises_only_config_error(words: list[str]) -> None:
    try:
        keepalived.import_text(" ".join(words))
    except ConfigError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_raises_only_config_error(text: str) -> None:
    try:
        keepalived.import_text(text)
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_seed_raises_only_config_error(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from([SEED_004_MASTER, MULTICAST, SYNC, CHECKS, IPV6]))
    lines = text.split("\n")
    for _ in range(data.draw(st.integers(1, 4))):
        n = data.draw(st.integers(0, len(lines) - 1))
        lines[n] = data.draw(st.one_of(st.sampled_from(WORDS), st.text(max_size=20),
                                       st.just(lines[n][: len(lines[n]) // 2])))
    try:
        cluster, out, _ = keepalived.import_text("\n".join(lines))
    except ConfigError:
        return
    if cluster is not None:  # whatever was accepted is a valid vigil.toml
        toml.parse(out, "vigil.toml")
