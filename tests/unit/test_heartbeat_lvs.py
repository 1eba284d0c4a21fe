"""config/heartbeat_lvs.py: `ldirectord[::FILE]` in haresources is read as ldirectord reads
FILE, its virtual services the group's virtual servers; ldirectord is not run.

Seed 003 (/work/shared/seeds/003_85b33958c01edf29.txt, "heartbeat+lvs+ldirectord") shows
its ha.cf, haresources and ldirectord.cf as screenshots only. What its text says of them is
kept here: the virtual address 172.25.39.100 on eth0, round robin to 172.25.39.4 and .5 by
direct routing (`-g`), ldirectord and httpd started by Heartbeat with the address, and "rs都挂掉,
本机补上" (every real server down: the director serves itself, ldirectord's fallback). The
rest is ldirectord's own sample file, which the seed copies (`cp /usr/share/doc/
ldirectord-3.9.5/ldirectord.cf /etc/ha.d/`) and edits.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tests.unit.test_heartbeat_config import SHA1, round_trip, write
from tests.unit.test_import_ldirectord import SEED_003
from vigil import model
from vigil.config import export, heartbeat, toml
from vigil.errors import ConfigError

SEED_003_HACF = "bcast eth1\nkeepalive 2\ndeadtime 30\nauto_failback on\nnode server1\n" \
                "node server2\n"
SEED_003_HARESOURCES = "server1 IPaddr::172.25.39.100/24/eth0 ldirectord httpd\n"
SEED_003_LDIRECTORD = SEED_003  # test_import_ldirectord.py's copy of the seed's file


def seed_003(root: Path, ldirectord: str = SEED_003_LDIRECTORD,
             haresources: str = SEED_003_HARESOURCES) -> Path:
    d = write(root, SEED_003_HACF, haresources, SHA1)
    (d / "ldirectord.cf").write_text(ldirectord)
    return d


def test_seed_003_ldirectord_becomes_the_groups_virtual_server(tmp_path: Path) -> None:
    cluster, warnings = heartbeat.load_dir(seed_003(tmp_path))
    (group,) = cluster.groups
    assert group.name == "172.25.39.100"
    assert [r.name for r in group.resources] == ["ip 172.25.39.100/24 on eth0",
                                                   "heartbeat:httpd"]
    (vs,) = cluster.virtual_servers
    assert (vs.group, str(vs.endpoint), vs.protocol, vs.scheduler, vs.forward) == \
        ("172.25.39.100", "172.25.39.100:80", "tcp", "rr", "dr")
    assert [str(r.endpoint) for r in vs.real] == ["172.25.39.4:80", "172.25.39.5:80"]
    assert str(vs.sorry_server) == "127.0.0.1:80" and not vs.quiescent
    check = vs.real[0].check
    assert (check.type, check.path, check.expect_body, check.interval, check.timeout) == \
        ("http", "/index.html", "Test Page", 1.0, 1.0)
    # the check timeout (3 s) is cut to the interval, and that is said
    assert any("negotiatetimeout 3s is longer than checkinterval 1s" in w for w in warnings)
    assert any("ldirectord is not run" in w and "haresources:1" in w for w in warnings), warnings
    round_trip(cluster)


def test_the_export_carries_the_virtual_server_and_its_notes(tmp_path: Path) -> None:
    imported = heartbeat.read_dir(seed_003(tmp_path))
    text = export.to_toml(imported.cluster, dict(imported.notes))
    assert "[[virtual_server]]" in text and 'group = "172.25.39.100"' in text
    assert 'forward = "dr"' in text and 'sorry_server = "127.0.0.1:80"' in text
    assert toml.parse(text, "vigil.toml").virtual_servers == imported.cluster.virtual_servers


def test_a_named_file_is_read_relative_to_the_directory_or_absolute(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.cf"
    other.write_text(SEED_003_LDIRECTORD.replace(".5:80 gate", ".6:80 gate"))
    d = seed_003(tmp_path / "ha.d", haresources=SEED_003_HARESOURCES.replace(
        "ldirectord", f"ldirectord::{other}"))
    (vs,) = heartbeat.load_dir(d)[0].virtual_servers
    assert str(vs.real[1].endpoint) == "172.25.39.6:80"
    (d / "lvs.cf").write_text(SEED_003_LDIRECTORD.replace(".5:80 gate", ".7:80 gate"))
    (d / "haresources").write_text(SEED_003_HARESOURCES.replace("ldirectord",
                                                                "ldirectord::lvs.cf"))
    (vs,) = heartbeat.load_dir(d)[0].virtual_servers
    assert str(vs.real[1].endpoint) == "172.25.39.7:80"


def test_a_missing_file_is_a_problem_naming_it(tmp_path: Path) -> None:
    d = seed_003(tmp_path)
    (d / "ldirectord.cf").unlink()
    with pytest.raises(ConfigError) as info:
        heartbeat.load_dir(d)
    (p,) = info.value.problems
    assert p.file == str(d / "ldirectord.cf") and "cannot read" in p.message, p


def test_a_problem_in_the_file_names_its_file_and_line(tmp_path: Path) -> None:
    bad = SEED_003_LDIRECTORD.replace("real=172.25.39.5:80", "real=172.25.39.100:80")
    with pytest.raises(ConfigError) as info:
        heartbeat.load_dir(seed_003(tmp_path, bad))
    (p,) = info.value.problems
    assert (p.file, p.line, p.key) == (str(tmp_path / "ldirectord.cf"), 8, "real"), p
    assert "the virtual service's address" in p.message


@pytest.mark.parametrize("haresources,message", [
    ("server1 ldirectord\n", "a group of ldirectord alone"),
    ("server1 IPaddr::172.25.39.100/24/eth0 ldirectord::a.cf::b.cf\n", "one argument"),
    ("server1 IPaddr::172.25.39.100/24/eth0 ldirectord\n"
     "server2 IPaddr::172.25.39.101/24/eth0 ldirectord\n", "one virtual service, one file"),
])
def test_what_cannot_be_balanced_is_refused(tmp_path: Path, haresources: str,
                                            message: str) -> None:
    with pytest.raises(ConfigError) as info:
        heartbeat.load_dir(seed_003(tmp_path, haresources=haresources))
    assert any(message in p.message for p in info.value.problems), info.value.problems


def test_other_scripts_stay_scripts(tmp_path: Path) -> None:
    cluster, _ = heartbeat.load_dir(seed_003(tmp_path, haresources=(
        "server1 IPaddr::172.25.39.100/24/eth0 ipvsadm httpd\n")))
    assert cluster.virtual_servers == ()
    assert [r for r in cluster.groups[0].resources if isinstance(r, model.HeartbeatResource)] \
        == [model.HeartbeatResource("ipvsadm"), model.HeartbeatResource("httpd")]
    assert ipaddress.ip_address("172.25.39.100") in {
        r.address.ip for r in cluster.groups[0].resources if isinstance(r, model.IpResource)}
