"""`vigil import heartbeat|keepalived` and `vigil check-config --heartbeat-dir` from the
command line: what an administrator types on a Heartbeat or keepalived host."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from vigil.cli.main import cli
from vigil.config import toml

HACF = """# seed 001 style
logfile /var/log/ha-log
keepalive 2
deadtime 30
warntime 10
initdead 120
udpport 694
ucast eth1 192.168.60.1
ucast eth1 192.168.60.2
auto_failback on
node node1
node node2
ping 192.168.60.254
respawn hacluster /usr/lib/heartbeat/ipfail
"""
HARESOURCES = "node1 IPaddr::192.168.60.200/24/eth0 Filesystem::/dev/sdb5::/webdata::ext3 httpd\n"


def hadir(tmp_path: Path, method: str = "sha1 s3cr3t-but-long-enough") -> Path:
    d = tmp_path / "ha.d"
    d.mkdir()
    (d / "ha.cf").write_text(HACF)
    (d / "haresources").write_text(HARESOURCES)
    (d / "authkeys").write_text(f"auth 1\n1 {method}\n")
    (d / "authkeys").chmod(0o600)
    return d


def test_import_heartbeat_prints_a_config_vigil_reads(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["import", "heartbeat", str(hadir(tmp_path))])
    assert r.exit_code == 0, r.stderr
    c = toml.parse(r.stdout, "imported.toml")
    assert [n.name for n in c.nodes] == ["node1", "node2"]
    assert c.groups[0].home == "node1" and len(c.groups[0].resources) == 3
    assert "ipfail" in r.stderr  # said, not silently dropped


def test_check_config_reads_a_heartbeat_directory_as_it_is(tmp_path: Path) -> None:
    d = hadir(tmp_path)
    r = CliRunner().invoke(cli, ["check-config", "--heartbeat-dir", str(d)])
    assert r.exit_code == 0, r.stderr
    # Issue 12: it said "/etc/vigil/vigil.toml: OK", a file it never read.
    assert r.stdout.startswith(f"{d} (ha.cf, haresources, authkeys): OK: cluster"), r.stdout
    assert "vigil.toml" not in r.stdout


def test_crc_needs_the_explicit_flag(tmp_path: Path) -> None:
    d = hadir(tmp_path, method="crc")
    r = CliRunner().invoke(cli, ["check-config", "--heartbeat-dir", str(d)])
    assert r.exit_code == 2 and "crc" in r.stderr and "--allow-crc" in r.stderr
    r = CliRunner().invoke(cli, ["check-config", "--heartbeat-dir", str(d),
                                                 "--allow-crc"])
    assert r.exit_code == 0, r.stderr


def test_import_keepalived(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text("""vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication { auth_type PASS
        auth_pass 1111 }
    virtual_ipaddress { 192.168.8.100/24 }
}
virtual_server 192.168.8.100 80 {
    delay_loop 6
    lb_kind DR
    real_server 192.168.8.101 80 {
        weight 1
    }
}
""")
    r = CliRunner().invoke(cli, ["import", "keepalived", str(conf)])
    assert r.exit_code == 0, r.stderr
    c = toml.parse(r.stdout, "imported.toml")
    assert str(c.groups[0].resources[0].address) == "192.168.8.100/24"  # type: ignore[union-attr]
    [vs] = c.virtual_servers
    assert (vs.group, vs.forward, [str(r.endpoint) for r in vs.real]) == \
        ("VI_1", "dr", ["192.168.8.101:80"])
    conf.write_text(conf.read_text().replace("lb_kind DR", "lb_kind TUN"))
    r = CliRunner().invoke(cli, ["import", "keepalived", str(conf)])
    assert r.exit_code == 0, r.stderr
    assert not toml.parse(r.stdout, "imported.toml").virtual_servers
    assert "virtual_server" in r.stderr and "not carried over" in r.stderr
    assert "lb_kind TUN: IP tunnelling has no data plane in vigil" in r.stderr


VIGIL_TOML = """[cluster]
name = "c"
key_file = "/etc/vigil/key"
[[node]]
name = "server201"
address = "10.0.0.1"
[[node]]
name = "server202"
address = "10.0.0.2"
[[group]]
name = "web"
home = "server201"
[[group.resource]]
type = "ip"
address = "192.168.10.200/24"
interface = "eth0"
"""


def test_import_ipvsadm_and_ldirectord_into_a_vigil_toml(tmp_path: Path) -> None:
    """Seed 000's rules (NAT) go into the group holding their address, seed 003's (DR) into
    the only group, as direct routing; the whole file printed parses."""
    saved = tmp_path / "ipvsadm"
    saved.write_text("-A -t 192.168.10.200:80 -s rr\n"
                     "-a -t 192.168.10.200:80 -r 192.168.10.201:80 -m -w 1\n"
                     "-a -t 192.168.10.200:80 -r 192.168.10.202:80 -m -w 1\n"
                     "-A -t 172.25.39.100:80 -s rr\n"
                     "-a -t 172.25.39.100:80 -r 172.25.39.4:80 -g\n")
    into = tmp_path / "vigil.toml"
    into.write_text(VIGIL_TOML)
    r = CliRunner().invoke(cli, ["import", "ipvsadm", str(saved), "--into", str(into)])
    assert r.exit_code == 0, r.stderr
    c = toml.parse(r.stdout, "out.toml")
    assert [(vs.name, vs.group, vs.forward, len(vs.real)) for vs in c.virtual_servers] == [
        ("vs-192-168-10-200-80", "web", "nat", 2), ("vs-172-25-39-100-80", "web", "dr", 1)]
    assert "no group holds its address; given to the only group, web" in r.stdout
    assert "not carried over" not in r.stderr

    cf = tmp_path / "ldirectord.cf"
    cf.write_text("checktimeout=3\ncheckinterval=5\nvirtual=192.168.10.200:80\n"
                  "\treal=192.168.10.201:80 masq\n\treal=192.168.10.202:80 masq 2\n"
                  "\tservice=http\n\trequest=\"health\"\n\treceive=\"ok\"\n")
    r = CliRunner().invoke(cli, ["import", "ldirectord", str(cf)])
    assert r.exit_code == 0, r.stderr
    assert "placeholder" in r.stdout and 'group = "lvs"' in r.stdout
    r = CliRunner().invoke(cli, ["import", "ldirectord", str(cf), "--into", str(into)])
    c = toml.parse(r.stdout, "out.toml")
    vs = c.virtual_servers[0]
    assert vs.group == "web" and [r.weight for r in vs.real] == [1, 2]
    assert vs.real[0].check.path == "/health" and vs.real[0].check.expect_body == "ok"

    # A file that is not one is refused, naming the line.
    cf.write_text("virtual=192.168.10.200:80\n\treal=192.168.10.201:80 masq banana\n")
    r = CliRunner().invoke(cli, ["import", "ldirectord", str(cf)])
    assert r.exit_code == 2 and "ldirectord.cf:2" in r.stderr, (r.exit_code, r.stderr)
