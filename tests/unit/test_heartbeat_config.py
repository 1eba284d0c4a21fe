"""vigil.config.heartbeat (ha.cf, haresources, authkeys -> model) and vigil.config.export.

Golden tests use every ha.cf, haresources and authkeys fragment of /work/shared/seeds, copied
here as literal strings (the seeds are outside the repository), each under a comment naming its
seed file. Seed 003 shows its files as screenshots only and seed 004 is about keepalived: they
have no fragment to copy.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil import model
from vigil.config import export, ha_cf, heartbeat, toml, toml_write
from vigil.config.duration import parse_duration
from vigil.errors import ConfigError, ConfigProblem

FUZZ = settings(max_examples=int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
IP = ipaddress.ip_address
NET = ipaddress.ip_interface

MINIMAL = "bcast eth1\nauto_failback on\nnode n1\nnode n2\n"
SHA1 = "auth 1\n1 sha1 0123456789abcdef0123\n"


def write(root: Path, hacf: str = MINIMAL, haresources: str = "", authkeys: str = SHA1,
          mode: int = 0o600) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ha.cf").write_text(hacf)
    (root / "haresources").write_text(haresources)
    (root / "authkeys").write_text(authkeys)
    os.chmod(root / "authkeys", mode)
    return root


def load(root: Path, allow_crc: bool = False, **files: str) -> tuple[model.Cluster, list[str]]:
    return heartbeat.load_dir(write(root, **files) if files else root, allow_crc)


def problems(root: Path, allow_crc: bool = False, **files: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load(root, allow_crc, **files)
    return info.value.problems


def only(root: Path, **files: str) -> ConfigProblem:
    found = problems(root, **files)
    assert len(found) == 1, found
    return found[0]


def expected(root: Path, nodes: tuple[str, str], links: tuple[model.AnyLink, ...],
             groups: tuple[model.Group, ...], **fields: object) -> model.Cluster:
    """The Cluster load_dir should build: Heartbeat's defaults unless `fields` say otherwise."""
    base = model.Cluster(
        name="heartbeat", key_file=root / "authkeys", nodes=tuple(model.Node(n, ()) for n in nodes),
        groups=groups, timings=model.Timings(1.0, 15.0, 30.0, 30.0), links=links,
        key_format="authkeys", source=str(root))
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def ip(address: str, interface: str, label: str | None = None) -> model.IpResource:
    return model.IpResource(NET(address), interface, label=label)


def script(name: str, *args: str) -> model.HeartbeatResource:
    return model.HeartbeatResource(name, args)


def bcast(iface: str) -> model.ExtraLink:
    return model.ExtraLink("bcast", iface)


def round_trip(cluster: model.Cluster, notes: dict[str, str] | None = None) -> model.Cluster:
    """to_toml, then toml.parse: the model must come back, but for its source and key."""
    parsed = toml.parse(export.to_toml(cluster, notes), "vigil.toml")
    keyless = dataclasses.replace(cluster, key_file=parsed.key_file, key_format="vigil",
                                  allow_crc=False, source="vigil.toml")
    assert parsed == keyless
    if cluster.key_format == "authkeys":
        assert parsed.key_file == export.KEY_FILE
    return parsed


# --- the seeds -------------------------------------------------------------------------------

# /work/shared/seeds/000_58fbc55f7fe21ac3.txt: "配置心跳的配置文件:ha.cf", verbatim
SEED_000_HACF = """\
logfile /var/log/ha_log/ha-log.log ## ha的日志文件记录位置。如没有该目录,则需要手动添加

bcast eth1 ##使用eth1做心跳监测

keepalive 2 ##设定心跳(监测)时间时间为2秒

warntime 10

deadtime 30

initdead 120

hopfudge 1

udpport 694 ##使用udp端口694 进行心跳监测

auto_failback on

node server201 ##节点1,必须要与 uname -n 指令得到的结果一致。

node server202 ##节点2

ping 192.168.10.1 ##通过ping 网关来监测心跳是否正常。

respawn hacluster /usr/lib64/heartbeat/ipfail

apiauth ipfail gid=root uid=root

debugfile /Datas/logs/ha_log/ha-debug.log
"""
# 000: "配置心跳的监控:haresources", verbatim
SEED_000_HARESOURCES = "server201 IPaddr::192.168.10.200 ipvsadm httpd\n"
# 000: "配置心跳的加密方式:authkeys" for a crossover cable, verbatim
SEED_000_AUTHKEYS = "auth 1\n\n1 crc\n"

# /work/shared/seeds/001_aa2ad8a8bce98e78.txt: the group as its ResourceManager log lines
# print it ("Acquiring resource group: node1 192.168.60.200/24/eth0 Filesystem::/dev/sdb5::
# /webdata::ext3"), verbatim
SEED_001_HARESOURCES = "node1 192.168.60.200/24/eth0 Filesystem::/dev/sdb5::/webdata::ext3\n"
# 001 shows no ha.cf, only what its log says of it: broadcast on eth1 port 694, ping node
# 192.168.60.1, ipfail, initdead 120 s ("这个120秒刚好是ha.cf中initdead选项的设定时间"),
# auto_failback on, nodes node1 and node2. Reconstructed from those lines:
SEED_001_HACF_FROM_LOG = """\
udpport 694
bcast eth1
initdead 120
auto_failback on
node node1
node node2
ping 192.168.60.1
respawn hacluster /usr/lib/heartbeat/ipfail
"""

# /work/shared/seeds/002_299aef2053e4de5a.txt, "Linux 系统下双机HA的功能实现": the haresources
# example after "scriptname::argument#" (the '#' starts the example line's comment marker)
SEED_002_HARESOURCES_DOC = "hello 192.168.8.240/19/eth0/192.168.31.251 httpd tomcat\n"
# 002, "双机 Linux 集群服务器的实现" (a PDF): the ha.cf lines it shows, verbatim, with the
# comment the PDF broke onto a line of its own ("闭。")
SEED_002_HACF = """\
auto_failback on # 自动接管服务功能开, off 为关
闭。
node Anode # 指定节点主机名
node Bnode # 指定节点主机名
"""
# 002: its media lines are lost in the PDF; the text says eth1 is the heartbeat network and a
# null-modem cable joins the serial ports "( 默认)". Repaired and completed from that prose:
SEED_002_HACF_REPAIRED = """\
bcast eth1
baud 19200 # ( 默认)
serial /dev/ttyS0
auto_failback on # 自动接管服务功能开, off 为关闭。
node Anode # 指定节点主机名
node Bnode # 指定节点主机名
"""
# 002: haresources, verbatim (the PDF wrapped each comment, leaving "servicelist1" alone)
SEED_002_HARESOURCES = """\
Anode IPaddr::192.168.0.49 servicelist1
# 在 Anode 上 设 置 虚 拟 IP192.168.0.49 提 供 服 务
servicelist1
Bnode IPaddr::192.168.0.50 servicelist2
# 在 Bnode 上 设 置 虚 拟 IP192.168.0.50 提 供 服 务
servicelist2
"""
# 002: "( 3) authkeys 文件, 此文件的文件模式( mode) 需设置为 600", verbatim
SEED_002_AUTHKEYS = "auth 1\n1 crc\n"


def found_ip(address: str, interface: str | None = None,
             broadcast: str | None = None) -> model.IpResource:
    """An address whose prefix length (and interface, when None) are found at start."""
    given = "/" in address
    return model.IpResource(NET(address if given else f"{address}/32"), interface,
                            prefix_given=given,
                            broadcast=None if broadcast is None else IP(broadcast))


def test_seed_000_as_written_runs_with_allow_crc(tmp_path: Path) -> None:
    """Issue 12: the bare IPaddr::192.168.10.200 was refused; Heartbeat's IPaddr finds the
    interface and netmask at start, and so does vigil (resources/findif.py)."""
    found = problems(tmp_path, hacf=SEED_000_HACF, haresources=SEED_000_HARESOURCES,
                     authkeys=SEED_000_AUTHKEYS)
    where = {(Path(p.file).name, p.line, p.key) for p in found}
    assert where == {("authkeys", 3, "crc")}
    crc = found[0]
    assert "crc gives no security" in crc.message and "--allow-crc" in crc.message
    cluster, _ = load(tmp_path / "b", True, hacf=SEED_000_HACF, haresources=SEED_000_HARESOURCES,
                      authkeys=SEED_000_AUTHKEYS)
    assert cluster.groups[0].resources[0] == found_ip("192.168.10.200")
    assert cluster.groups[0].resources[0].name == "ip 192.168.10.200"
    round_trip(cluster)


def test_seed_000_with_prefix_and_interface(tmp_path: Path) -> None:
    cluster, warnings = load(tmp_path, True, hacf=SEED_000_HACF, authkeys=SEED_000_AUTHKEYS,
                             haresources="server201 IPaddr::192.168.10.200/24/eth0 ipvsadm "
                                         "httpd\n")
    group = model.Group("192.168.10.200", "server201",
                        (ip("192.168.10.200/24", "eth0"), script("ipvsadm"), script("httpd")))
    assert cluster == expected(
        tmp_path, ("server201", "server202"), (bcast("eth1"),), (group,),
        timings=model.Timings(2.0, 10.0, 30.0, 120.0), log_file=Path("/var/log/ha_log/ha-log.log"),
        ping=(IP("192.168.10.1"),), ping_interval=2.0, deadping=30.0, allow_crc=True)
    said = "\n".join(warnings)
    for directive in ("ha.cf:13: hopfudge", "ha.cf:25: respawn", "ipfail",
                      "ha.cf:27: apiauth", "ha.cf:29: debugfile", "authkeys:3: crc"):
        assert directive in said
    assert len(warnings) == 6, warnings
    assert "haresources:1: ipvsadm: " in said and "vigil import ipvsadm" in said
    round_trip(cluster)


def test_seed_001(tmp_path: Path) -> None:
    cluster, warnings = load(tmp_path, hacf=SEED_001_HACF_FROM_LOG,
                             haresources=SEED_001_HARESOURCES)
    group = model.Group("192.168.60.200", "node1", (
        ip("192.168.60.200/24", "eth0"),
        model.FilesystemResource(Path("/dev/sdb5"), Path("/webdata"), "ext3")))
    assert cluster == expected(
        tmp_path, ("node1", "node2"), (bcast("eth1"),), (group,),
        timings=model.Timings(1.0, 15.0, 30.0, 120.0), ping=(IP("192.168.60.1"),),
        ping_interval=1.0, deadping=30.0)
    assert ["ipfail" in w for w in warnings] == [True]
    round_trip(cluster)


def test_seed_002_haresources_doc_example(tmp_path: Path) -> None:
    """Issue 12: the fourth field, the broadcast address, was dropped with a warning; it is
    given to the address as written."""
    cluster, warnings = load(tmp_path, hacf="bcast eth1\nauto_failback off\nnode hello\n"
                                             "node other\n",
                             haresources=SEED_002_HARESOURCES_DOC)
    assert cluster.groups == (model.Group("192.168.8.240", "hello", (
        model.IpResource(NET("192.168.8.240/19"), "eth0", broadcast=IP("192.168.31.251")),
        script("httpd"), script("tomcat"))),)
    assert cluster.auto_failback is False
    assert warnings == []
    round_trip(cluster)


def test_seed_002_hacf_as_extracted_fails_on_the_broken_comment(tmp_path: Path) -> None:
    found = problems(tmp_path, hacf=SEED_002_HACF)
    assert {(p.line, p.key) for p in found} == {(2, "闭。"), (None, "media")}
    assert "no heartbeat medium" in found[0].message  # lines unknown sort first
    assert "unknown ha.cf directive '闭。'" in found[1].message


def test_seed_002_haresources_as_extracted(tmp_path: Path) -> None:
    found = problems(tmp_path, hacf=SEED_002_HACF_REPAIRED, haresources=SEED_002_HARESOURCES,
                     authkeys=SEED_002_AUTHKEYS)
    assert {(Path(p.file).name, p.line, p.key) for p in found} == {
        ("haresources", 3, "servicelist1"),  # the PDF's wrapped comment: not a node
        ("haresources", 6, "servicelist2"),
        ("authkeys", 2, "crc")}
    assert any("is not a node of ha.cf (its nodes: Anode, Bnode)" in p.message for p in found)
    assert any("at least one resource" in p.message for p in found)


def test_seed_002_repaired(tmp_path: Path) -> None:
    haresources = SEED_002_HARESOURCES.replace("servicelist1\nB", "B").replace(
        "\nservicelist2\n", "\n")
    cluster, warnings = load(tmp_path, True, hacf=SEED_002_HACF_REPAIRED,
                             haresources=haresources, authkeys=SEED_002_AUTHKEYS)
    assert cluster == expected(
        tmp_path, ("Anode", "Bnode"), (bcast("eth1"), model.SerialLink(Path("/dev/ttyS0"))),
        (model.Group("192.168.0.49", "Anode", (found_ip("192.168.0.49"),
                                               script("servicelist1"))),
         model.Group("192.168.0.50", "Bnode", (found_ip("192.168.0.50"),
                                               script("servicelist2")))),
        allow_crc=True)
    assert len(warnings) == 1 and "crc gives no security" in warnings[0]
    round_trip(cluster)


@pytest.mark.parametrize("text", [SEED_000_AUTHKEYS, SEED_002_AUTHKEYS])
def test_seed_authkeys(tmp_path: Path, text: str) -> None:
    (tmp_path / "authkeys").write_text(text)
    os.chmod(tmp_path / "authkeys", 0o600)
    with pytest.raises(ConfigError, match="crc gives no security"):
        heartbeat.read_authkeys(tmp_path / "authkeys")
    key, warnings = heartbeat.read_authkeys(tmp_path / "authkeys", allow_crc=True)
    assert key == b"" and len(warnings) == 1 and "crc" in warnings[0]


# --- ha.cf -----------------------------------------------------------------------------------


def test_heartbeat_defaults_and_initdead_rule(tmp_path: Path) -> None:
    assert load(tmp_path / "a", hacf=MINIMAL)[0].timings == model.Timings(1.0, 15.0, 30.0, 30.0)
    t = load(tmp_path / "b", hacf=MINIMAL + "deadtime 5\n")[0].timings
    assert (t.warntime, t.initdead) == (2.5, 12.0)  # deadtime < 6 s: 12 s
    t = load(tmp_path / "c", hacf=MINIMAL + "deadtime 8\n")[0].timings
    assert t.initdead == 16.0  # 6-10 s: twice deadtime


@pytest.mark.parametrize("value,seconds", [("2", 2.0), ("0.5", 0.5), ("500ms", 0.5),
                                           ("500MS", 0.5), ("250msec", 0.25),
                                           ("200000us", 0.2), (".3", 0.3), ("15400usec", 0.015)])
def test_times(tmp_path: Path, value: str, seconds: float) -> None:
    cluster, _ = load(tmp_path, hacf=MINIMAL + f"keepalive {value}\ndeadtime 10\n")
    assert cluster.timings.keepalive == seconds


def test_media_ports_and_links(tmp_path: Path) -> None:
    cluster, warnings = load(tmp_path, hacf="""\
udpport 695
bcast eth1, eth2
mcast eth3 239.0.0.1 695 2 0
ucast eth4 10.0.0.1
ucast eth4 10.0.0.2
ucast eth5 10.1.0.1 10.1.0.2
serial /dev/ttyS0
baud 115200
serial /dev/ttyS1
auto_failback off
node a, b
""")
    assert cluster.port == 695
    assert cluster.links == (
        bcast("eth1"), bcast("eth2"), model.ExtraLink("mcast", "eth3", IP("239.0.0.1"), 2),
        model.UcastLink("eth4", (IP("10.0.0.1"), IP("10.0.0.2"))),
        model.UcastLink("eth5", (IP("10.1.0.1"), IP("10.1.0.2"))),
        model.SerialLink(Path("/dev/ttyS0"), 19200), model.SerialLink(Path("/dev/ttyS1"), 115200))
    assert [w.split(": ")[1] for w in warnings] == ["baud"]


def test_failback_forms(tmp_path: Path) -> None:
    for n, (lines, value, said) in enumerate([
            ("auto_failback off\n", False, []),
            ("auto_failback legacy\n", True, ["auto_failback"]),
            ("", True, ["auto_failback"]),
            ("nice_failback on\n", False, ["nice_failback"]),
            ("nice_failback off\n", True, ["nice_failback", "auto_failback"])]):
        cluster, warnings = load(tmp_path / str(n), hacf="bcast eth1\nnode a\nnode b\n" + lines)
        assert cluster.auto_failback is value
        assert [w.split(": ")[1] for w in warnings] == said
    p = only(tmp_path / "x", hacf=MINIMAL + "nice_failback off\n")
    assert (p.line, p.key) == (5, "nice_failback") and "contradicts" in p.message


def test_respawn_program_kept_without_shell(tmp_path: Path) -> None:
    cluster, _ = load(tmp_path, hacf=MINIMAL + "respawn nobody /usr/local/bin/probe -i 5\n")
    assert cluster.respawn == (model.Respawn("nobody", ("/usr/local/bin/probe", "-i", "5")),)


def test_nodes_are_matched_ignoring_case_and_dots_warned(tmp_path: Path) -> None:
    cluster, warnings = load(tmp_path, hacf="bcast eth1\nauto_failback on\nnode Web1.example\n"
                                            "node web2\n",
                             haresources="WEB1.EXAMPLE 10.0.0.9/24/eth0\n")
    assert cluster.groups[0].home == "Web1.example"
    assert "--node Web1.example" in warnings[0]


def test_cluster_name_realtime_watchdog(tmp_path: Path) -> None:
    cluster, _ = load(tmp_path, hacf=MINIMAL + "cluster web\nrealtime off\n"
                                               "watchdog /dev/watchdog\n")
    assert (cluster.name, cluster.realtime, cluster.watchdog) == \
        ("web", False, Path("/dev/watchdog"))


def test_ping_group_and_deadping(tmp_path: Path) -> None:
    cluster, warnings = load(tmp_path, hacf=MINIMAL + "ping_group routers 10.0.0.1 10.0.0.2\n"
                                                      "ping 10.0.0.3\ndeadping 5\n")
    assert cluster.ping == (IP("10.0.0.1"), IP("10.0.0.2"), IP("10.0.0.3"))
    assert (cluster.ping_interval, cluster.deadping) == (1.0, 5.0)
    assert "counts each of its 2 addresses" in warnings[0]


NO_EFFECT_SAMPLES = {
    "debugfile": "/var/log/ha-debug", "logfacility": "local0", "use_logd": "yes",
    "conn_logd_time": "60", "debug": "1", "rtprio": "5", "hopfudge": "1", "msgfmt": "classic",
    "uuidfrom": "file", "hbgenmethod": "time", "max_rexmit_delay": "250", "log_badpack": "on",
    "compression": "bz2", "compression_threshold": "2", "traditional_compression": "no",
    "coredumps": "true", "coreroot": "/var/lib/heartbeat/cores", "memreserve": "6500",
    "normalpoll": "true", "record_config_changes": "on", "record_pengine_inputs": "off",
    "enable_config_writes": "on",
}


@pytest.mark.parametrize("directive", sorted(ha_cf._NO_EFFECT))
def test_no_effect_directives_warn_and_check_values(tmp_path: Path, directive: str) -> None:
    _, warnings = load(tmp_path / "ok", hacf=MINIMAL + f"{directive} "
                                                       f"{NO_EFFECT_SAMPLES[directive]}\n")
    assert warnings == [(f"{tmp_path}/ok/ha.cf:5: {directive}: accepted, no effect: "
                         f"{ha_cf._NO_EFFECT[directive][1]}")]
    p = only(tmp_path / "bad", hacf=MINIMAL + f"{directive} @bad\n")
    assert (p.line, p.key) == (5, directive) and "'@bad'" in p.message


@pytest.mark.parametrize("line,key,message", [
    ("stonith baytech /etc/ha.d/conf/stonith.baytech", "stonith",
     "configure [fencing] in vigil.toml (fence_*"),
    ("stonith_host * baytech 10.0.0.3 mylogin secret", "stonith_host", "[fencing]"),
    ("quorum_server 10.0.0.9", "quorum_server", "[witness]"),
    ("env FOO=bar", "env", "wrapper script"),
    ("hbaping qlogic-qla2200-0", "hbaping", "use ping with an IP address"),
    ("ping6 2001:db8::1", "ping6", "IPv4"),
    ("crm on", "crm", "vigil is the resource manager: describe the resources in haresources"),
    ("crm respawn", "crm", "describe the resources in haresources"),
    ("pacemaker yes", "pacemaker", "vigil is the resource manager"),
    ("autojoin any", "autojoin", "exactly the two nodes"),
    ("autojoin other", "autojoin", "autojoin none"),
    ("use_apphbd on", "use_apphbd", "no apphbd"),
    ("respawn hacluster /usr/lib/heartbeat/ccm", "respawn", "ccm is part of Heartbeat"),
    ("respawn root /usr/lib64/heartbeat/pingd -m 100", "respawn", "ping nodes (ping) replace"),
    ("respawn hacluster /usr/lib/heartbeat/dopd", "respawn", "dopd is part of Heartbeat"),
    ("respawn root /usr/local/bin/x > /tmp/log", "respawn", "without a shell"),
    ("respawn /usr/bin/x", "respawn", "respawn USER /ABSOLUTE/PATH"),
])
def test_refused_directives(tmp_path: Path, line: str, key: str, message: str) -> None:
    p = only(tmp_path, hacf=MINIMAL + line + "\n")
    assert (p.file, p.line, p.key) == (f"{tmp_path}/ha.cf", 5, key)
    assert message in p.message, p.message


@pytest.mark.parametrize("line", ["crm off", "pacemaker no", "autojoin none", "use_apphbd off"])
def test_off_is_fine(tmp_path: Path, line: str) -> None:
    assert load(tmp_path, hacf=MINIMAL + line + "\n")[1] == []


@pytest.mark.parametrize("line,key,message", [
    ("keepalive abc", "keepalive", "'abc' is not a time: write seconds (2, 0.5) or milli"),
    ("keepalive 2s", "keepalive", "is not a time"),  # Heartbeat refuses "2s" as well
    ("keepalive 0", "keepalive", "between 1ms and 168h"),
    ("keepalive 1 2", "keepalive", "takes one value, found 2"),
    ("deadtime 1000000", "deadtime", "168h"),
    ("udpport 70000", "udpport", "from 1 to 65535"),
    ("baud 1234", "baud", "is not one of 1200"),
    ("realtime maybe", "realtime", "not a boolean"),
    ("keepalive: 2", "keepalive:", "write `keepalive VALUE`: ha.cf directives take no ':'"),
    ("keeplive 2", "keeplive", "unknown ha.cf directive 'keeplive'; did you mean 'keepalive'"),
    ("frobnicate", "frobnicate", "unknown ha.cf directive 'frobnicate'"),
    ("node", "node", "needs a value"),
    ("bcast eth/1", "bcast", "not a Linux interface name"),
    ("mcast eth1 10.0.0.1 694 1 0", "mcast", "not an IPv4 multicast address"),
    ("mcast eth1 239.0.0.1 694 1", "mcast", "write `mcast IFACE GROUP PORT TTL LOOP`"),
    ("mcast eth1 239.0.0.1 695 1 0", "mcast", "vigil runs every link on one port"),
    ("mcast eth1 239.0.0.1 694 0 0", "mcast", "from 1 to 255"),
    ("ucast eth1 peer.example.com", "ucast", "not host names"),
    ("ucast eth1", "ucast", "write `ucast IFACE PEER-ADDRESS`"),
    ("ping gateway", "ping", "not an IP address"),
    ("ping 10.0.0.1 10.0.0.1", "ping", "already a ping node"),
    ("serial ttyS0", "serial", "not an absolute path"),
    ("logfile ha-log", "logfile", "not an absolute path"),
    ("cluster my_cluster!", "cluster", "not a valid vigil name"),
    ("apiauth ipfail", "apiauth", "uid=USERS"),
    ("auto_failback on", "auto_failback", "given twice (line 2 and here): keep one"),
    ("warntime 40", "warntime", "must lie between keepalive"),
    ("mcast6 eth1 239.0.0.1 694 1 0", "mcast6", "not an IPv6 multicast address"),
    ("bcast eth1", "media", "the same heartbeat medium is given twice"),
])
def test_bad_hacf_lines(tmp_path: Path, line: str, key: str, message: str) -> None:
    p = only(tmp_path, hacf=MINIMAL + line + "\n")
    assert p.file == f"{tmp_path}/ha.cf" and p.key == key
    assert p.line == (None if key == "media" else 5)
    assert message in p.message, p.message


def test_udpport_after_the_media_it_should_set(tmp_path: Path) -> None:
    p = only(tmp_path, hacf=MINIMAL + "udpport 700\n")
    assert (p.line, p.key) == (5, "udpport") and "after the bcast/ucast line 1" in p.message
    assert load(tmp_path / "ok", hacf=MINIMAL + "udpport 694\n")[0].port == 694


@pytest.mark.parametrize("nodes,line,found", [("", None, "found 0: none"),
                                              ("node a\n", 3, "found 1: a"),
                                              ("node a b c\n", 3, "found 3: a, b, c")])
def test_node_count(tmp_path: Path, nodes: str, line: int | None, found: str) -> None:
    p = only(tmp_path, hacf="bcast eth1\nauto_failback on\n" + nodes)
    assert (p.line, p.key) == (line, "node")
    assert "exactly two nodes" in p.message and found in p.message


def test_duplicate_node(tmp_path: Path) -> None:
    p = only(tmp_path, hacf=MINIMAL + "node N1\n")
    assert (p.line, p.key, p.message) == (5, "node", "N1 is listed twice")


def test_garbage_bytes_in_directives_but_not_in_comments(tmp_path: Path) -> None:
    root = write(tmp_path)
    (root / "ha.cf").write_bytes(MINIMAL.encode() + "# 注释\n".encode("gbk"))
    load(root)  # a GBK comment is fine
    (root / "ha.cf").write_bytes(MINIMAL.encode() + b"node \xff\xfe\0\n")
    p = only(root)
    assert (p.line, p.key) == (5, "<syntax>")


def test_every_problem_at_once_sorted_by_file_and_line(tmp_path: Path) -> None:
    found = problems(tmp_path, hacf="node a\nkeepalive x\nbcast eth1\nfoo\n",
                     haresources="zz 10.0.0.1/33\n", authkeys="auth 1\n", mode=0o644)
    assert [(Path(p.file).name, p.line, p.key) for p in found] == [
        ("ha.cf", 1, "node"), ("ha.cf", 2, "keepalive"), ("ha.cf", 4, "foo"),
        ("haresources", 1, "10.0.0.1/33"), ("authkeys", None, "<mode>"),
        ("authkeys", 1, "auth")]


def test_not_regular_files(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "ha.cf").unlink()
    os.mkfifo(tmp_path / "ha.cf")  # reading it would block
    p = only(tmp_path)
    assert (Path(p.file).name, p.key, p.message) == ("ha.cf", "<file>",
                                                     "is a FIFO, not a regular file")


def test_two_mounts_by_label_get_distinct_ids(tmp_path: Path) -> None:
    cluster, _ = load(tmp_path, haresources="n1 Filesystem::LABEL=a::/x::ext4 "
                                            "Filesystem::UUID=b::/x::ext4\n")
    assert [r.id for r in cluster.groups[0].resources] == ["fs-x", "fs-x-2"]  # type: ignore
    round_trip(cluster)


def test_missing_files(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    found = problems(tmp_path)
    assert [(Path(p.file).name, p.key) for p in found] == [
        ("ha.cf", "<file>"), ("haresources", "<file>"), ("authkeys", "<file>")]
    assert all("cannot read" in p.message for p in found)


# --- haresources -----------------------------------------------------------------------------


def test_resource_forms(tmp_path: Path) -> None:
    (tmp_path / "ldirectord.cf").write_text("virtual=10.0.0.5:80\n\treal=10.0.0.7:80 masq\n")
    cluster, warnings = load(tmp_path, haresources="""\
# a comment
n1 192.168.0.100/24/eth0:0/192.168.0.255 \\
   Filesystem::/dev/drbd0::/data::ext4::noatime,nodev drbddisk::r0   # continued
n2 IPaddr2::10.0.0.5/255.255.255.0/eth1 Filesystem::LABEL=web::/srv/www::xfs
n2 drbddisk::r1 ldirectord::ldirectord.cf ipvsadm
n1 Filesystem::/dev/sdc1::/srv/www::ext4 MailTo::root::failover
n1 httpd
n2 httpd
""")
    assert [(g.name, g.home) for g in cluster.groups] == [
        ("192.168.0.100", "n1"), ("10.0.0.5", "n2"), ("drbddisk-r1", "n2"), ("fs-www", "n1"),
        ("httpd", "n1"), ("httpd-2", "n2")]
    assert cluster.groups[0].resources == (
        model.IpResource(NET("192.168.0.100/24"), "eth0", label="eth0:0",
                         broadcast=IP("192.168.0.255")),
        model.FilesystemResource(Path("/dev/drbd0"), Path("/data"), "ext4", "noatime,nodev"),
        script("drbddisk", "r0"))
    assert cluster.groups[1].resources == (
        ip("10.0.0.5/24", "eth1"),
        model.OcfResource("heartbeat:Filesystem", "fs-srv-www", (
            ("device", "LABEL=web"), ("directory", "/srv/www"), ("fstype", "xfs"))))
    # ldirectord is not run: vigil reads its file and balances in the group itself.
    assert cluster.groups[2].resources == (script("drbddisk", "r1"), script("ipvsadm"))
    assert [(vs.name, vs.group, vs.forward, [str(r.endpoint) for r in vs.real])
            for vs in cluster.virtual_servers] == [
        ("vs-10-0-0-5-80", "drbddisk-r1", "nat", ["10.0.0.7:80"])]
    assert cluster.groups[3].resources[1] == script("MailTo", "root", "failover")
    assert len(warnings) == 5 and "LABEL=web" in warnings[0] and "haresources:4" in warnings[0]
    assert "haresources:5: ldirectord::ldirectord.cf: " in warnings[1]
    assert "ldirectord is not run" in warnings[1] and "vigil import ipvsadm" in warnings[2]
    # what the import of ldirectord.cf noted, logged at every start with its file
    assert all(w.startswith(f"{tmp_path / 'ldirectord.cf'}: virtual service 10.0.0.5:80")
               for w in warnings[3:]), warnings[3:]
    assert "negotiatetimeout 30s is longer than checkinterval 10s" in warnings[4]
    round_trip(cluster)


@pytest.mark.parametrize("line,key,message", [
    ("n1 IPaddr::10.0.0.1/24/10.0.1.255", "IPaddr::10.0.0.1/24/10.0.1.255",
     "broadcast 10.0.1.255 is not in 10.0.0.0/24"),
    ("n1 IPaddr::10.0.0.1/33/eth0", "IPaddr::10.0.0.1/33/eth0", "not a prefix length"),
    ("n1 IPaddr::10.0.0.1/24/eth0/x", "IPaddr::10.0.0.1/24/eth0/x", "not a broadcast"),
    ("n1 IPaddr::10.0.0.1/24/eth0/1/2", "IPaddr::10.0.0.1/24/eth0/1/2", "ADDRESS[/PREFIX"),
    ("n1 IPaddr::fe80::1/64/eth0", "IPaddr::fe80::1/64/eth0", "write IPaddr::ADDRESS"),
    ("n1 IPaddr::224.0.0.1/24/eth0", "IPaddr::224.0.0.1/24/eth0", "not a unicast"),
    ("n1 IPaddr2::10.0.0.1/24/averyveryverylong", "IPaddr2::10.0.0.1/24/averyveryverylong",
     "interface name"),
    ("n1 Filesystem::/dev/sdb5::/webdata", "Filesystem::/dev/sdb5::/webdata", "FSTYPE"),
    ("n1 Filesystem::/dev/sdb5::/::ext3", "Filesystem::/dev/sdb5::/::ext3", "other than /"),
    ("n1 Filesystem::/dev/sdb5::/w::EXT3", "Filesystem::/dev/sdb5::/w::EXT3", "filesystem type"),
    ("n1 ../bin/evil", "../bin/evil", "not a resource script name"),
    ("n1 drbddisk::", "drbddisk::", "an argument is empty"),
    ("n1", "n1", "at least one resource"),
    ("n3 httpd", "n3", "'n3' is not a node of ha.cf (its nodes: n1, n2)"),
])
def test_bad_haresources(tmp_path: Path, line: str, key: str, message: str) -> None:
    p = only(tmp_path, haresources="\n" + line + "\n")
    assert (p.file, p.line, p.key) == (f"{tmp_path}/haresources", 2, key)
    assert message in p.message, p.message


def test_address_used_twice_or_as_heartbeat_address(tmp_path: Path) -> None:
    found = problems(tmp_path, hacf=MINIMAL + "ucast eth1 10.0.0.2\nping 10.0.0.3\n",
                     haresources="n1 10.0.0.9/24/eth0\nn2 10.0.0.9/24/eth0 10.0.0.2/24/eth0 "
                                 "10.0.0.3/24/eth0\n")
    assert [(p.line, p.message) for p in found] == [
        (2, "10.0.0.9 is already used on haresources line 1"),
        (2, "10.0.0.2 is already a ucast address (eth1)"),
        (2, "10.0.0.3 is already a ping node")]


# --- authkeys --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_authkeys_mode(tmp_path: Path, mode: int) -> None:
    p = only(tmp_path, mode=mode)
    assert (p.file, p.line, p.key) == (f"{tmp_path}/authkeys", None, "<mode>")
    assert f"mode {mode:04o}" in p.message and f"chmod 600 {tmp_path}/authkeys" in p.message


def test_authkeys_key_and_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, authkeys="# keys\nauth 2\n1 md5 old-secret\n  2 sha1 s3cr3t#not-a-"
                                    "comment\n") / "authkeys"
    key, warnings = heartbeat.read_authkeys(path)
    assert key == b"s3cr3t#not-a-comment"
    assert [w.split(": ")[1] for w in warnings] == ["authkeys"]  # key 1 is unused
    write(tmp_path, authkeys="auth 3\n3 sha1 short\n")
    assert "use at least 16" in heartbeat.read_authkeys(path)[1][0]


@pytest.mark.parametrize("text,line,key,message", [
    ("", None, "auth", "no `auth N` line"),
    ("auth 2\n1 sha1 abcdefabcdefabcdef\n", 1, "auth", "there is no key line 2"),
    ("auth 1\nauth 1\n1 sha1 abcdefabcdefabcdef\n", 2, "auth", "a second auth line"),
    ("auth 1\n1 sha256 abcdefabcdefabcdef\n", 2, "sha256", "Heartbeat's are crc, md5 and sha1"),
    ("auth 1\n1 sha1\n", 2, "sha1", "sha1 needs a key"),
    ("auth 1\n1 crc abc\n", 2, "crc", "crc takes no key"),
    ("auth 1\n1 sha1 two words\n", 2, "sha1", "must be one word"),
    ("auth 16\n16 sha1 abcdefabcdefabcdef\n", 2, "sha1", "out of range (0-15)"),
    ("auth 1\n1 sha1 a\n1 md5 b\n", 3, "md5", "defined twice"),
    ("auth one\n", 1, "<syntax>", "expected `auth N`"),
])
def test_bad_authkeys(tmp_path: Path, text: str, line: int | None, key: str,
                      message: str) -> None:
    found = problems(tmp_path, authkeys=text)
    p = found[0]
    assert (p.file, p.line, p.key) == (f"{tmp_path}/authkeys", line, key)
    assert message in p.message, p.message


def test_authkeys_not_a_file(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "authkeys").unlink()
    (tmp_path / "authkeys").mkdir()
    assert only(tmp_path).message == "is a directory, not a regular file"


# --- export ----------------------------------------------------------------------------------


def test_import_dir_comments_what_changed(tmp_path: Path) -> None:
    write(tmp_path, hacf=SEED_000_HACF, authkeys=SEED_000_AUTHKEYS,
          haresources="server201 IPaddr::192.168.10.200/24/eth0 ipvsadm httpd\n")
    text, warnings = export.import_dir(tmp_path)
    lines = text.splitlines()
    assert lines[0].startswith("# Imported from Heartbeat's") and len(warnings) == 6
    assert "# - hopfudge: accepted, no effect: vigil relays no messages between nodes" in lines
    at = lines.index('key_file = "/etc/vigil/authkey"')
    assert "`vigil keygen /etc/vigil/authkey`" in " ".join(x[2:] for x in lines[at - 2:at])
    at = lines.index("[[group]]")
    assert lines[at - 1] == ("# haresources:1: server201 IPaddr::192.168.10.200/24/eth0 "
                             "ipvsadm httpd")
    assert "crc" not in text  # the authkeys secret is replaced, not carried over


def test_notes_next_to_their_key(tmp_path: Path) -> None:
    imported = heartbeat.read_dir(write(tmp_path, hacf="bcast eth1\nnode a\nnode b\n"
                                                       "auto_failback legacy\n"))
    text = export.to_toml(imported.cluster, dict(imported.notes))
    lines = text.splitlines()
    at = lines.index("auto_failback = true")
    assert lines[at - 2].startswith("# auto_failback: legacy: Heartbeat's pre-1.2 failback")
    assert lines[at - 1] == "# node)"
    assert "# keepalive: not in ha.cf: keepalive, deadtime, warntime, initdead" in text
    round_trip(imported.cluster, dict(imported.notes))


def test_round_trip_of_everything_toml_reads() -> None:
    nodes = (model.Node("n1", (IP("10.0.0.1"), IP("fd00::1"))),
             model.Node("n2", (IP("10.0.0.2"), IP("fd00::2"))))
    resources: tuple[model.Resource, ...] = (
        model.IpResource(NET("192.168.1.10/24"), "eth0", "eth0:web",
                         model.ArpSettings(5, 0.2, 0.0, 1, 30.0), 7.0, None),
        model.ExecResource(("/bin/web", "start"), ("/bin/web", "stop"), ("/bin/web", "st"), 9.5,
                           model.Monitor(3.0, 1.5)),
        model.ExecResource(("/bin/a",), ("/bin/b",), ("/bin/c",)),
        model.ExecResource(("/bin/a",), ("/bin/b",)),
        model.OcfResource("heartbeat:IPaddr2", "vip", (("ip", "10.1.1.1"), ("nic", 'q"\\')),
                          12.0, model.Monitor(20.0)),
        model.OcfResource("linbit:drbd", "drbd0", timeout=None, monitor=None),
        model.LsbResource("tomcat", 30.0), model.SystemdResource("nginx.service"),
        model.HeartbeatResource("drbddisk", ("r0",), monitor=model.Monitor(timeout=0.009)),
        model.FilesystemResource(Path("/dev/sdb1"), Path("/srv"), "xfs", "noatime", 61.0, 0.5),
    )
    cluster = model.Cluster(
        name="all", key_file=Path("/etc/vigil/authkey"), nodes=nodes,
        groups=(model.Group("g1", "n1", resources, model.GroupPolicy(5, 0.0)),
                model.Group("g2", "n2", (model.SystemdResource("x.service"),))),
        timings=model.Timings(0.013, 0.051, 0.26, 7.3), auto_failback=False, port=700,
        links=(model.ExtraLink("mcast", "eth2", IP("239.1.1.1"), 3), bcast("eth3"),
               model.DiskLink(Path("/dev/sdz"), per_node=(("n1", Path("/dev/sdz")),
                                                          ("n2", Path("/dev/sdy")))),
               model.SerialLink(Path("/dev/ttyS0"), 57600)),
        realtime=False, log_file=Path("/var/log/v.log"), watchdog=Path("/dev/watchdog1"),
        watchdog_timeout=4,
        fencing=model.Fencing("fence_ipmilan", "off", params=(("ip", "10.0.0.9"),
                                                             ("odd key", "ünï\tcode")),
                              node_params=(("n1", (("plug", "1"),)), ("n2", (("plug", "2"),))),
                              timeout=31.0, retry_interval=6.0, on_failure="takeover",
                              delay=0.0, monitor_interval=0.0),
        witness=model.Witness(IP("10.0.0.10"), 7000, 2.5, "arbiter"),
        ping=(IP("10.0.0.254"),), ping_interval=0.5, deadping=2.0)
    round_trip(cluster)
    for fencing in (model.Fencing("external", command=("/sbin/fence", "x")),
                    model.Fencing("manual", delay=3.0), model.Fencing("disk", delay=0.0)):
        links = cluster.links if fencing.agent == "disk" else ()
        round_trip(dataclasses.replace(cluster, fencing=fencing, links=links, witness=None))


@pytest.mark.parametrize("extra", ["ucast eth2 10.0.0.1 10.0.0.2\n",
                                   "respawn nobody /usr/local/bin/probe\n"])
def test_round_trip_ucast_and_respawn(tmp_path: Path, extra: str) -> None:
    round_trip(load(tmp_path, hacf=MINIMAL + extra)[0])


@given(st.floats(min_value=0, max_value=7 * 86400, allow_nan=False))
def test_durations_written_exactly(seconds: float) -> None:
    text = toml_write.dur(seconds)
    value = toml.tomllib.loads(f"x = {text}")["x"]
    assert parse_duration(value) == seconds


@given(st.text(max_size=40))
def test_strings_written_exactly(s: str) -> None:
    line = f"{toml_write.toml_key(s or 'k')} = {toml_write.str_(s)}"
    assert toml.tomllib.loads(line) == {s or "k": s}


# --- fuzz ------------------------------------------------------------------------------------

_WORDS = sorted(ha_cf._DIRECTIVES) + ["auth", "1", "sha1", "crc", "n1", "n2", "eth0",
                                      "10.0.0.1", "10.0.0.1/24/eth0", "IPaddr::", "::",
                                      "Filesystem::/dev/x::/m::ext4", "239.0.0.1", "694",
                                      "on", "off", "legacy", "500ms", "\\", "#", ",", ":"]
_LINE = st.lists(st.one_of(st.sampled_from(_WORDS), st.text(string.printable, max_size=8),
                           st.text(max_size=4)), max_size=7).map(" ".join)
# Lines that are right, so that many examples load and go on through to_toml and toml.parse.
_GOOD = {
    "hacf": [
        "keepalive 500ms", "deadtime 5", "warntime 2", "initdead 40", "udpport 694",
        "mcast eth2 239.0.0.1 694 1 0", "ucast eth3 10.9.0.1", "serial /dev/ttyS0",
        "baud 38400", "ping 10.0.0.254", "ping_group g 10.0.0.253 10.0.0.252", "deadping 10",
        "respawn hacluster /usr/lib/heartbeat/ipfail", "respawn nobody /bin/true",
        "hopfudge 1", "logfile /var/log/ha-log", "watchdog /dev/watchdog", "realtime off",
        "apiauth ipfail uid=hacluster", "cluster web", "crm off", "# comment"],
    "haresources": ["n1 10.0.0.10/24/eth0 httpd", "N1 httpd",
                    "n2 IPaddr::10.0.0.11/24/eth0:1 \\\n Filesystem::/dev/sdb1::/data::ext4",
                    "N1 IPaddr2::10.0.0.12/16/eth1/10.0.255.255 Filesystem::-Ldata::/x::xfs"],
    "authkeys": ["1 crc", "2 md5 abc", "# comment"],
}
_BASE = {"hacf": MINIMAL.splitlines(), "haresources": [],
         "authkeys": ["auth 3", "3 sha1 0123456789abcdef"]}


def _file(kind: str) -> st.SearchStrategy[str]:
    """Mostly right files (a base, some right lines, sometimes a wrong one), or garbage."""
    right = st.lists(st.sampled_from(_GOOD[kind]), unique=True).map(lambda x: _BASE[kind] + x)
    mixed = st.tuples(right, st.lists(_LINE, max_size=2), st.randoms()).map(
        lambda t: t[2].sample(t[0] + t[1], len(t[0]) + len(t[1])))
    return st.one_of(right.map("\n".join), mixed.map("\n".join), st.text(max_size=200),
                     st.lists(_LINE, max_size=12).map("\n".join))


@FUZZ
@given(hacf=_file("hacf"), haresources=_file("haresources"),
       authkeys=st.one_of(_file("authkeys"), st.binary(max_size=100)),
       mode=st.sampled_from([0o600, 0o400, 0o644]), allow_crc=st.booleans())
def test_fuzz_only_config_errors(hacf: str, haresources: str, authkeys: str | bytes, mode: int,
                                 allow_crc: bool) -> None:
    """No text makes load_dir raise anything but ConfigError; what loads round-trips."""
    with tempfile.TemporaryDirectory() as d:
        root = write(Path(d), hacf, haresources, "")
        if isinstance(authkeys, bytes):
            (root / "authkeys").write_bytes(authkeys)
        else:
            (root / "authkeys").write_text(authkeys, errors="surrogateescape")
        os.chmod(root / "authkeys", mode)
        try:
            imported = heartbeat.read_dir(root, allow_crc)
        except ConfigError as e:
            assert e.problems and all(isinstance(p, ConfigProblem) for p in e.problems)
            return
    cluster = imported.cluster
    if cluster.respawn or any(isinstance(l, model.UcastLink) for l in cluster.links):
        export.to_toml(cluster, dict(imported.notes))  # toml.parse cannot read these yet
    else:
        round_trip(cluster, dict(imported.notes))
