"""vigil.config.toml and vigil.config.duration: the TOML format, its problems and their lines."""

from __future__ import annotations

import ipaddress
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil import model
from vigil.config import toml
from vigil.config.duration import parse_duration
from vigil.errors import ConfigError, ConfigProblem

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vigil.toml"

# Lines: 1 [cluster], 2 name, 3 key_file, 5 [[node]], 6-7 n1, 9 [[node]], 10-11 n2; 12 is next.
BASE = """\
[cluster]
name = "web"
key_file = "/etc/vigil/authkey"

[[node]]
name = "n1"
address = "10.0.0.1"

[[node]]
name = "n2"
address = "10.0.0.2"
"""
NEXT = BASE.count("\n") + 1  # the line number of the first line appended to BASE

GROUP = """\
[[group]]
name = "web"
home = "n1"
[[group.resource]]
type = "ip"
address = "192.168.10.200/24"
interface = "eth0"
"""


def problems(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        toml.parse(text, "t.toml")
    for p in info.value.problems:
        assert p.file == "t.toml"
    return info.value.problems


def where(text: str) -> set[tuple[int | None, str]]:
    return {(p.line, p.key) for p in problems(text)}


def only(text: str) -> ConfigProblem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def in_cluster(*lines: str) -> str:
    """BASE with `lines` added to [cluster], at line 4 onwards."""
    return BASE.replace("authkey\"\n", "authkey\"\n" + "".join(f"{x}\n" for x in lines), 1)


def replace(old: str, new: str, text: str = BASE) -> str:
    assert old in text
    return text.replace(old, new, 1)


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("200ms", 0.2), ("1s", 1.0), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0), ("0s", 0.0),
     (" 10 ms ", 0.01), (".5s", 0.5), (3, 3.0), (0, 0.0), (2.5, 2.5), ("0ms", 0.0)],
)
def test_good_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "says"),
    [("", "empty"), ("  ", "empty"), ("-1s", "negative"), (-1, "negative"), (-0.5, "negative"),
     ("5", "no unit"), ("5d", "unknown unit 'd'"), ("5 sec", "unknown unit"), ("s", "not a"),
     ("1.s", "not a"), ("1e3s", "not a"), ("1s2", "not a"), (True, "boolean"),
     (False, "boolean"), (math.nan, "finite"), (math.inf, "finite"), (None, "NoneType"),
     (["1s"], "list"), (10**400, "finite")],
)
def test_bad_durations(value: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_duration(value)


# --- valid documents ----------------------------------------------------------------------


def test_example_parses_to_the_expected_model() -> None:
    ip = ipaddress.ip_address
    expected = model.Cluster(
        name="web",
        key_file=Path("/etc/vigil/authkey"),
        nodes=(model.Node("n1", (ip("10.0.0.201"), ip("192.168.10.201"))),
               model.Node("n2", (ip("10.0.0.202"), ip("192.168.10.202")))),
        groups=(model.Group("web", "n1", (
            model.IpResource(address=ipaddress.ip_interface("192.168.10.200/24"),
                             interface="eth0", label="eth0:web",
                             arp=model.ArpSettings(3, 0.01, 1.0, 3, 0.0), timeout=5.0),
            model.ExecResource(start=("/usr/local/bin/web", "start"),
                               stop=("/usr/local/bin/web", "stop"),
                               status=("/usr/local/bin/web", "status"), timeout=20.0,
                               monitor=model.Monitor()),
        )),),
        timings=model.Timings(keepalive=0.2, warntime=0.5, deadtime=1.0, initdead=3.0),
        auto_failback=True,
        port=694,
        links=(model.ExtraLink("mcast", "eth1", ip("239.0.0.42"), 1),
               model.ExtraLink("bcast", "eth2"),
               model.DiskLink(Path("/dev/disk/by-id/wwn-0x600a0b80001234-part1")),
               model.SerialLink(Path("/dev/ttyS0"), 115200)),
        witness=model.Witness(ip("192.168.10.9"), 6940, 2.0, "witness"),
        realtime=True,
        log_file=Path("/var/log/vigil.log"), watchdog=Path("/dev/watchdog"), watchdog_timeout=2,
        fencing=model.Fencing(
            agent="fence_ipmilan", action="reboot",
            params=(("ip", "10.0.0.9"), ("username", "admin"), ("password", "secret"),
                    ("lanplus", "1")),
            node_params=(("n1", (("plug", "1"),)), ("n2", (("plug", "2"),))),
            timeout=30.0, retry_interval=5.0, on_failure="block", delay=2.0,
            monitor_interval=60.0),
        source=str(EXAMPLE),
    )
    assert toml.load(EXAMPLE) == expected
    assert toml.load(str(EXAMPLE)) == expected


def test_minimal_document_takes_the_defaults() -> None:
    c = toml.parse(BASE, "t.toml")
    assert c.timings == model.Timings()
    assert (c.auto_failback, c.port, c.realtime, c.log_file, c.links, c.groups) == (
        True, 694, True, None, (), ())
    assert c.nodes[1] == model.Node("n2", (ipaddress.ip_address("10.0.0.2"),))
    assert c.source == "t.toml"


def test_other_spellings_are_accepted() -> None:
    text = in_cluster('keepalive = 0.1', 'deadtime = "2s"', 'warntime = 1', 'initdead = "1m"',
                      'auto_failback = false', 'port = 1', 'realtime = false') + """
[[link]]
mode = "bcast"
interface = "eth1"

[[group]]
name = "g"
home = "n2"
[[group.resource]]
type = "exec"
start = ["/bin/true"]
stop = ["/bin/true"]
timeout = 1.5
"""
    text = replace('"10.0.0.1"', '["fd00::1"]', replace('"10.0.0.2"', '["fd00::2"]', text))
    c = toml.parse(text, "t.toml")
    assert c.timings == model.Timings(0.1, 1.0, 2.0, 60.0)
    assert (c.auto_failback, c.port, c.realtime) == (False, 1, False)
    assert c.nodes[0].addresses == (ipaddress.ip_address("fd00::1"),)
    assert c.links == (model.ExtraLink("bcast", "eth1"),)
    assert c.groups[0].resources == (model.ExecResource(("/bin/true",), ("/bin/true",),
                                                        timeout=1.5),)


def test_inline_tables_work_and_map_to_their_line() -> None:
    text = """\
cluster = { name = "web", key_file = "/k" }
node = [{ name = "n1", address = "10.0.0.1" },
        { name = "n2", address = "10.0.0.1" }]
"""
    assert where(text) == {(2, "node[1].address")}
    assert toml.parse(text.replace("1\" }]", "2\" }]"), "t").name == "web"


def test_only_heartbeat_links_from_link_tables() -> None:
    text = replace('address = "10.0.0.1"\n', "", replace('address = "10.0.0.2"\n', ""))
    assert where(text) == {(5, "node")}
    assert "no heartbeat link" in problems(text)[0].message
    c = toml.parse(text + '[[link]]\nmode = "mcast"\ninterface = "eth1"\ngroup = "ff02::42"\n',
                   "t")
    assert c.nodes[0].addresses == ()
    assert c.links == (model.ExtraLink("mcast", "eth1", ipaddress.ip_address("ff02::42")),)


# --- one problem, exactly located ---------------------------------------------------------

CASES: list[tuple[str, str, int | None, str, str]] = [
    # (id, document, line, key, part of the message)
    ("empty name", replace('"web"', '""'), 2, "cluster.name", "must not be empty"),
    ("missing name", replace('name = "web"\n', ""), 1, "cluster.name", "required key is missing"),
    ("key_file type", replace('"/etc/vigil/authkey"', "5"), 3, "cluster.key_file",
     "expected a string, found an integer (5)"),
    ("no cluster", BASE[BASE.index("[[node]]"):], None, "cluster", "missing [cluster] table"),
    ("cluster not a table", "cluster = 5\n" + BASE[BASE.index("[[node]]"):], 1, "cluster",
     "found an integer"),
    ("bad duration", in_cluster('deadtime = "fast"'), 4, "cluster.deadtime", "not a duration"),
    ("duration unit", in_cluster('initdead = "3 days"'), 4, "cluster.initdead", "unknown unit"),
    ("duration bool", in_cluster("keepalive = true"), 4, "cluster.keepalive", "boolean"),
    ("duration too long", in_cluster('initdead = "1000h"'), 4, "cluster.initdead", "maximum"),
    ("port range", in_cluster("port = 0"), 4, "cluster.port", "expected 1 to 65535"),
    ("port type", in_cluster('port = "694"'), 4, "cluster.port",
     "expected an integer from 1 to 65535, found a string ('694')"),
    ("bool type", in_cluster('auto_failback = "yes"'), 4, "cluster.auto_failback",
     "expected true or false, found a string"),
    ("realtime type", in_cluster("realtime = 1"), 4, "cluster.realtime", "found an integer"),
    ("log_file type", in_cluster("log_file = []"), 4, "cluster.log_file", "found an array"),
    ("unknown cluster key", in_cluster('deadtme = "1s"'), 4, "cluster.deadtme",
     "unknown key 'deadtme' in [cluster]; valid keys: name, key_file, keepalive, warntime"),
    ("unknown top key", BASE + "[clusterr]\nx = 1\n", NEXT, "clusterr",
     "valid keys: cluster, node, link, group"),
    ("one node", BASE[: BASE.index("[[node]]\nname = \"n2\"")], 5, "node",
     "vigil supports exactly two nodes for now; found 1"),
    ("three nodes", BASE + '[[node]]\nname = "n3"\naddress = "10.0.0.3"\n', 5, "node",
     "exactly two nodes"),
    ("node not an array", replace("[[node]]", "[node]", BASE[: BASE.index("[[node]]\nname = \"n2")]),
     5, "node", "expected [[node]] entries (an array of tables), found a table"),
    ("resource without group", BASE + GROUP[GROUP.index("[[group.resource]]"):], NEXT, "group",
     "expected [[group]] entries (an array of tables), found a table"),
    ("node not a table", 'node = ["n1", "n2"]\n' + BASE[: BASE.index("[[node]]")], 1,
     "node[0]", "expected a table, found a string ('n1')"),
    ("duplicate node", replace('"n2"', '"n1"'), 10, "node[1].name", "defined twice"),
    ("bad node name", replace('"n2"', '"-n2"'), 10, "node[1].name", "not a valid name"),
    ("long node name", replace('"n2"', '"' + "n" * 64 + '"'), 10, "node[1].name", "1-63"),
    ("missing node name", replace('name = "n2"\n', ""), 9, "node[1].name", "missing"),
    ("unknown node key", replace('address = "10.0.0.2"', 'adress = "10.0.0.2"'), 11,
     "node[1].adress", "valid keys: name, address"),
    ("address count", replace('"10.0.0.2"', '["10.0.0.2", "10.0.1.2"]'), 11, "node[1].address",
     "one address per heartbeat link"),
    ("address reused", replace('"10.0.0.2"', '"10.0.0.1"'), 11, "node[1].address",
     "10.0.0.1 is already used by node n1"),
    ("address reused in a node", replace('"10.0.0.2"', '["10.0.0.2", "10.0.0.2"]',
                                         replace('"10.0.0.1"', '["10.0.0.1", "10.0.1.1"]')),
     11, "node[1].address", "already used"),
    ("bad address", replace('"10.0.0.2"', '"10.0.0.300"'), 11, "node[1].address",
     "'10.0.0.300' is not an IPv4 or IPv6 address"),
    ("address prefix", replace('"10.0.0.2"', '"10.0.0.2/24"'), 11, "node[1].address",
     "no prefix length"),
    ("address family", replace('"10.0.0.2"', '"fd00::2"'), 11, "node[1].address", "IPv6"),
    ("multicast node address", replace('"10.0.0.2"', '"224.0.0.1"'), 11, "node[1].address",
     "not a unicast"),
    ("address type", replace('"10.0.0.2"', "[2]"), 11, "node[1].address",
     "expected a string, found an integer (2)"),
    ("mcast without group", BASE + '[[link]]\nmode = "mcast"\ninterface = "eth1"\n', NEXT,
     "link[0].group", "required key is missing"),
    ("mcast unicast group", BASE + '[[link]]\nmode = "mcast"\ninterface = "eth1"\n'
                                   'group = "10.1.1.1"\n', NEXT + 3, "link[0].group",
     "not a multicast address"),
    ("bcast with group", BASE + '[[link]]\nmode = "bcast"\ninterface = "eth1"\n'
                                'group = "239.1.1.1"\n', NEXT + 3, "link[0].group",
     "not a key of bcast links"),
    ("bcast with ttl", BASE + '[[link]]\nmode = "bcast"\ninterface = "eth1"\nttl = 2\n',
     NEXT + 3, "link[0].ttl", "not a key of bcast links"),
    ("ttl range", BASE + '[[link]]\nmode = "mcast"\ninterface = "eth1"\n'
                         'group = "239.1.1.1"\nttl = 256\n', NEXT + 4, "link[0].ttl",
     "expected 1 to 255"),
    ("link mode", BASE + '[[link]]\nmode = "anycast"\ninterface = "eth1"\n', NEXT + 1,
     "link[0].mode", 'expected "mcast", "bcast", "ucast", "disk" or "serial"'),
    ("disk link without device", BASE + '[[link]]\nmode = "disk"\n', NEXT, "link[0].device",
     "missing"),
    ("disk link with interface", BASE + '[[link]]\nmode = "disk"\ndevice = "/dev/sdb1"\n'
                                        'interface = "eth1"\n', NEXT + 3, "link[0].interface",
     "not a key of disk links (they take device)"),
    ("relative device", BASE + '[[link]]\nmode = "disk"\ndevice = "sdb1"\n', NEXT + 2,
     "link[0].device", "absolute path"),
    ("serial baud", BASE + '[[link]]\nmode = "serial"\ndevice = "/dev/ttyS0"\nbaud = 19201\n',
     NEXT + 3, "link[0].baud", "baud must be one of"),
    ("serial baud type", BASE + '[[link]]\nmode = "serial"\ndevice = "/dev/ttyS0"\n'
                                'baud = "fast"\n', NEXT + 3, "link[0].baud", "baud must be one of"),
    ("same device twice", BASE + '[[link]]\nmode = "serial"\ndevice = "/dev/ttyS0"\n'
                                 '[[link]]\nmode = "serial"\ndevice = "/dev/ttyS0"\n', NEXT + 5,
     "link[1].device", "used by two links"),
    ("device table missing a node", BASE + '[[link]]\nmode = "serial"\n'
                                          'device = { n1 = "/dev/ttyS0" }\n', NEXT + 2,
     "link[0].device", "missing: n2"),
    ("device table unknown node", BASE + '[[link]]\nmode = "serial"\ndevice = { n1 = '
                                         '"/dev/ttyS0", n2 = "/dev/ttyS1", n3 = "/dev/ttyS2" }\n',
     NEXT + 2, "link[0].device.n3", "no node named 'n3'"),
    ("disk fencing without disk", BASE + '[fencing]\nagent = "disk"\n', NEXT + 1,
     "fencing.agent", 'add a [[link]] with mode = "disk"'),
    ("witness address", BASE + '[witness]\naddress = "witness.example"\n', NEXT + 1,
     "witness.address", "not an IPv4 or IPv6 address"),
    ("witness missing address", BASE + '[witness]\nport = 6940\n', NEXT, "witness.address",
     "missing"),
    ("witness ipv6", BASE + '[witness]\naddress = "fd00::9"\n', NEXT + 1, "witness.address",
     "IPv4 for now"),
    ("witness lease", BASE + '[witness]\naddress = "10.0.0.9"\nlease = "100ms"\n', NEXT + 2,
     "witness.lease", "at least 4 x keepalive"),
    ("witness named like a node", BASE + '[witness]\naddress = "10.0.0.9"\nname = "n1"\n',
     NEXT + 2, "witness.name", "also a node's name"),
    ("witness unknown key", BASE + '[witness]\naddress = "10.0.0.9"\nttl = 3\n', NEXT + 2,
     "witness.ttl", "unknown key"),
    ("link interface", BASE + '[[link]]\nmode = "bcast"\n', NEXT, "link[0].interface",
     "missing"),
    ("interface name", BASE + '[[link]]\nmode = "bcast"\ninterface = "a-very-long-ifname"\n',
     NEXT + 2, "link[0].interface", "at most 15 characters"),
    ("unknown link key", BASE + '[[link]]\nmode = "bcast"\ninterface = "e"\nport = 1\n',
     NEXT + 3, "link[0].port", "valid keys: mode, interface, group, ttl"),
    ("group home", BASE + replace('"n1"', '"n3"', GROUP), NEXT + 2, "group[0].home",
     "'n3' is not a node; nodes: n1, n2"),
    ("group without resources", BASE + GROUP[: GROUP.index("[[group.resource]]")], NEXT,
     "group[0].resource", "at least one [[group.resource]]"),
    ("empty resource list", BASE + GROUP[: GROUP.index("[[group.resource]]")] + "resource = []\n",
     NEXT + 3, "group[0].resource", "at least one"),
    ("group policy", BASE + GROUP + "[group.policy]\nx = 1\n", NEXT + 8, "group[0].policy.x",
     "unknown key 'x' in [group.policy]; valid keys: migration_threshold, failure_timeout"),
    ("duplicate group", BASE + GROUP + replace("200/", "201/", GROUP), NEXT + 8, "group[1].name",
     "defined twice"),
    ("resource type", BASE + replace('"ip"', '"lxc"', GROUP), NEXT + 4,
     "group[0].resource[0].type", "unknown resource type 'lxc'; valid types: exec, "
                                  "filesystem, heartbeat, ip, lsb, ocf, postgresql, systemd"),
    ("resource type missing", BASE + replace('type = "ip"\n', "", GROUP), NEXT + 3,
     "group[0].resource[0].type", "required key is missing"),
    ("broadcast outside", BASE + GROUP + 'broadcast = "192.168.11.255"\n', NEXT + 7,
     "group[0].resource[0].broadcast", "not a broadcast address of 192.168.10.200/24"),
    ("broadcast v6", BASE + GROUP + 'broadcast = "fd00::ff"\n', NEXT + 7,
     "group[0].resource[0].broadcast", "IPv6 has no broadcast"),
    ("bad floating", BASE + replace("200/24", "999/24", GROUP), NEXT + 5,
     "group[0].resource[0].address", "is not an address (with a prefix length"),
    ("floating is a node address", BASE + replace("192.168.10.200", "10.0.0.2", GROUP),
     NEXT + 5, "group[0].resource[0].address", "already used by node n2"),
    ("label without interface", BASE + replace('interface = "eth0"\n', 'label = "eth0:1"\n',
                                               GROUP), NEXT + 6,
     "group[0].resource[0].label", "a label needs the interface written down"),
    ("label prefix", BASE + GROUP + 'label = "eth1:web"\n', NEXT + 7,
     "group[0].resource[0].label", "start with the interface name 'eth0'"),
    ("label length", BASE + GROUP + 'label = "eth0:abcdefghijk"\n', NEXT + 7,
     "group[0].resource[0].label", "at most 15 characters"),
    ("arp count", BASE + GROUP + "arp_count = -1\n", NEXT + 7, "group[0].resource[0].arp_count",
     "expected 0 to 100"),
    ("arp interval", BASE + GROUP + 'arp_interval = "soon"\n', NEXT + 7,
     "group[0].resource[0].arp_interval", "not a duration"),
    ("zero timeout", BASE + GROUP + 'timeout = "0s"\n', NEXT + 7, "group[0].resource[0].timeout",
     "longer than 0s"),
    ("exec key on ip", BASE + GROUP + 'start = ["/bin/x"]\n', NEXT + 7,
     "group[0].resource[0].start", "valid keys: type, address, interface, broadcast, label"),
]


@pytest.mark.parametrize(("text", "line", "key", "says"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_problem_names_its_line_and_key(text: str, line: int | None, key: str,
                                             says: str) -> None:
    found = problems(text)
    assert (line, key) in {(p.line, p.key) for p in found}, found
    assert any(says in p.message for p in found if p.key == key), found


EXEC = """\
[[group]]
name = "svc"
home = "n2"
[[group.resource]]
type = "exec"
start = ["/usr/bin/svc", "start"]
stop = ["/usr/bin/svc", "stop"]
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "says"),
    [('["/usr/bin/svc", "start"]', '"/usr/bin/svc start"', 5, "start",
      "argv lists are required, never a shell string"),
     ('["/usr/bin/svc", "start"]', '["svc", "start"]', 5, "start",
      "argv[0] 'svc' must be an absolute path"),
     ('["/usr/bin/svc", "start"]', "[]", 5, "start", "the argv list is empty"),
     ('["/usr/bin/svc", "start"]', '["/usr/bin/svc", ""]', 5, "start",
      "argv[1] must be a non-empty string"),
     ('["/usr/bin/svc", "start"]', '["/usr/bin/svc", 1]', 5, "start",
      "found an integer (1)"),
     ('["/usr/bin/svc", "stop"]', '{ argv = "x" }', 6, "stop", "found a table"),
     ('stop = ["/usr/bin/svc", "stop"]\n', "", 3, "stop", "required key is missing"),
     ('stop = ["/usr/bin/svc", "stop"]', 'stop = ["/x"]\nstatus = "/x"', 7, "status",
      "never a shell string"),
     ('stop = ["/usr/bin/svc", "stop"]', 'stop = ["/x"]\ntimeout = "-1s"', 7, "timeout",
      "negative"),
     ('stop = ["/usr/bin/svc", "stop"]', 'stop = ["/x"]\nlabel = "x"', 7, "label",
      "valid keys: type, start, stop, status, timeout")],
)
def test_exec_problems(old: str, new: str, line: int, key: str, says: str) -> None:
    text = BASE + GROUP + replace(old, new, EXEC)
    (p,) = problems(text)
    assert (p.line, p.key) == (NEXT + len(GROUP.splitlines()) + line, f"group[1].resource[0].{key}")
    assert says in p.message


def test_same_floating_address_in_two_groups() -> None:
    second = replace('"web"', '"web2"', replace("/24", "/16", GROUP))
    p = only(BASE + GROUP + second)
    assert (p.line, p.key) == (NEXT + 12, "group[1].resource[0].address")
    assert p.message == "192.168.10.200 is already used by group[0].resource[0]"


def test_timing_invariants_are_reported_at_the_key_or_the_header() -> None:
    found = problems(in_cluster('keepalive = "1s"'))
    assert {(p.line, p.key) for p in found} == {(1, "cluster.deadtime"), (1, "cluster.warntime")}
    assert found[0].message == ("300ms must be at least twice keepalive (1s), "
                                "or one late heartbeat kills a live link")
    assert where(in_cluster('deadtime = "150ms"')) == {(4, "cluster.deadtime"),
                                                        (1, "cluster.warntime")}
    assert where(in_cluster('keepalive = "5ms"', 'warntime = "6ms"', 'deadtime = "20ms"')) == {
        (4, "cluster.keepalive")}
    assert where(in_cluster('initdead = "0s"')) == {(4, "cluster.initdead")}


def test_several_problems_are_all_reported_in_line_order() -> None:
    text = """\
[cluster]
name = ""
key_file = "/k"
deadtime = "1x"
colour = "blue"

[[node]]
name = "n1"
address = "10.0.0.1"

[[node]]
name = "n2"
address = "10.0.0.1"

[[group]]
name = "g"
home = "n1"
[[group.resource]]
type = "exec"
start = "/bin/true"
stop = ["/bin/true"]
[[group.resource]]
type = "ip"
address = "10.9.9.999"
interface = "eth0"

[[group]]
name = "h"
home = "n9"
[[group.resource]]
type = "exec"
start = ["/bin/true"]
stop = ["bin/false"]
"""
    found = problems(text)
    assert [(p.line, p.key) for p in found] == [
        (2, "cluster.name"), (4, "cluster.deadtime"), (5, "cluster.colour"),
        (13, "node[1].address"), (20, "group[0].resource[0].start"),
        (24, "group[0].resource[1].address"), (29, "group[1].home"),
        (33, "group[1].resource[0].stop"),
    ]
    assert "t.toml:33: group[1].resource[0].stop:" in str(ConfigError(found))


def test_multiline_values_do_not_confuse_the_line_locator() -> None:
    text = in_cluster("log_file = '''", "[[node]]", "name = 'zz'", "'''",
                      'name2 = """x\\"""', "[[node]]", '"""', "port = [", "  [1],", "]")
    assert where(text) == {(8, "cluster.name2"), (11, "cluster.port")}


# --- syntax and files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [('[cluster]\nname = "web\n', 2), ("[cluster]\n[cluster]\n", 2), ("a = [\n1,\n", 2),
     ("x = 1\nx = 2", 2), ("= 1", 1), ("a = 1" + "1" * 5000, None), ("a = " + "[" * 5000, None)],
)
def test_syntax_errors_report_the_line(text: str, line: int | None) -> None:
    (p,) = problems(text)
    assert (p.line, p.key) == (line, "<syntax>")
    assert "(at line" not in p.message


def test_load_turns_file_problems_into_config_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        toml.load(missing)
    (p,) = info.value.problems
    assert (p.file, p.line, p.key) == (str(missing), None, "<file>")
    assert "No such file" in p.message
    with pytest.raises(ConfigError, match="is a directory, not a regular file"):
        toml.load(tmp_path)
    with pytest.raises(ConfigError, match="cannot read: embedded null byte"):
        toml.load(str(tmp_path) + "/a\0b")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[cluster]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        toml.load(bad)
    assert [(p.line, p.key) for p in info.value.problems] == [(2, "<syntax>")]
    good = tmp_path / "good.toml"
    good.write_text(BASE)
    assert toml.load(good).source == str(good)


# --- the locator and garbage --------------------------------------------------------------

_KEYS = ["cluster", "node", "link", "group", "resource", "name", "address", "type", "start",
         "stop", "home", "mode", "interface", "ttl", "deadtime", "port", "label", "a.b", "x y"]
_STRINGS = ["", "n1", "n2", "1s", "200ms", "-1s", "10.0.0.1", "10.0.0.1/24", "fd00::1",
            "239.0.0.1", "eth0", "eth0:1", "/bin/true", "mcast", "bcast", "ip", "exec",
            "[[node]]", "a = 1\n[x]", "'''", '"""', "\\", "é\x00\x7f"]
_scalars = (st.sampled_from(_STRINGS) | st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
            | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.booleans())
_keys = st.sampled_from(_KEYS) | st.text(st.characters(exclude_categories=["Cs"]), max_size=5)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)


def _key(k: str) -> str:
    if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k):
        return k
    return _str(k)


def _str(s: str) -> str:
    out = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or c == "\x7f" else
                  "\\" + c if c in '"\\' else c for c in s)
    return f'"{out}"'


def _inline(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_inline(x)}" for k, x in v.items()) + "}"


def _is_aot(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dumps(doc: dict[str, Any]) -> tuple[str, dict[toml.KeyPath, int]]:
    """A small TOML writer; also returns the line each key and header is written on."""
    out: list[str] = []
    lines: dict[toml.KeyPath, int] = {}

    def table(d: dict[str, Any], names: list[str], path: toml.KeyPath) -> None:
        for k, v in d.items():
            if not isinstance(v, dict) and not _is_aot(v):
                out.append(f"{_key(k)} = {_inline(v)}")
                lines[(*path, k)] = len(out)
        for k, v in d.items():
            header = ".".join(_key(n) for n in [*names, k])
            if isinstance(v, dict):
                out.append(f"[{header}]")
                lines[(*path, k)] = len(out)
                table(v, [*names, k], (*path, k))
            elif _is_aot(v):
                for n, item in enumerate(v):
                    out.append(f"[[{header}]]")
                    lines.setdefault((*path, k), len(out))
                    lines[(*path, k, n)] = len(out)
                    table(item, [*names, k], (*path, k, n))

    table(doc, [], ())
    return "\n".join(out) + "\n", lines


def check_outcome(text: str) -> None:
    try:
        toml.parse(text, "t.toml")
    except ConfigError as e:
        last = text.count("\n") + 1
        assert all(p.line is None or 1 <= p.line <= last for p in e.problems), e.problems


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200) | st.text(alphabet='[]{}="\'.,#\n \t\\abcnode1:-=', max_size=200))
def test_arbitrary_text_gives_a_cluster_or_a_config_error(text: str) -> None:
    check_outcome(text)
    toml.locate_keys(text)  # never raises, even on text tomllib refuses


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=5))
def test_generated_documents_are_located_and_never_crash(doc: dict[str, Any]) -> None:
    text, lines = dumps(doc)
    assert tomllib.loads(text) == doc  # the writer is right, so the lines are
    located = toml.locate_keys(text)
    assert {k: located.get(k) for k in lines} == lines
    check_outcome(text)


def _example_doc() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def _paths(v: Any, path: toml.KeyPath = ()) -> list[toml.KeyPath]:
    out = [path]
    if isinstance(v, dict):
        for k, x in v.items():
            out += _paths(x, (*path, k))
    elif isinstance(v, list):
        for n, x in enumerate(v):
            out += _paths(x, (*path, n))
    return out


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_example_gives_a_cluster_or_a_config_error(data: st.DataObject) -> None:
    doc = _example_doc()
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(_values)
    text, _ = dumps(doc)
    check_outcome(text)


def test_watchdog_path_and_whole_second_timeout() -> None:
    c = toml.parse(in_cluster('watchdog = "/dev/watchdog"', 'watchdog_timeout = "5s"'), "t.toml")
    assert c.watchdog == Path("/dev/watchdog") and c.watchdog_timeout == 5
    assert toml.parse(BASE, "t.toml").watchdog is None
    for bad in ('"1500ms"', '"500ms"', '0'):
        p = only(in_cluster('watchdog = "/dev/watchdog"', f"watchdog_timeout = {bad}"))
        assert (p.line, p.key) == (5, "cluster.watchdog_timeout") and "whole seconds" in p.message


def test_fencing_table() -> None:
    c = toml.parse(BASE + '[fencing]\nagent = "fence_ipmilan"\naction = "off"\n'
                          'params = { ip = "10.0.0.9", username = "admin", lanplus = 1 }\n'
                          'nodes = { n1 = { plug = "1" }, n2 = { plug = "2" } }\n', "t.toml")
    f = c.fencing
    assert f is not None and f.agent == "fence_ipmilan" and f.action == "off"
    assert f.params_for("n2") == (("ip", "10.0.0.9"), ("username", "admin"), ("lanplus", "1"),
                                  ("plug", "2"))
    assert f.on_failure == "block" and f.timeout == 30.0
    assert toml.parse(BASE, "t.toml").fencing is None
    keys = {p.key for p in problems(BASE + '[fencing]\nagent = "stonith"\n')}
    assert keys == {"fencing.agent"}
    keys = {p.key for p in problems(BASE + '[fencing]\nagent = "external"\n'
                                           'on_failure = "pray"\n')}
    assert keys == {"fencing.command", "fencing.on_failure"}
    keys = {p.key for p in problems(BASE + '[fencing]\nagent = "manual"\n'
                                           'nodes = { n7 = { plug = "7" } }\n')}
    assert keys == {"fencing.nodes.n7"}


def test_ping_nodes() -> None:
    c = toml.parse(in_cluster('ping = ["10.0.0.1", "10.0.0.2"]', 'ping_interval = "500ms"'),
                   "t.toml")
    assert [str(a) for a in c.ping] == ["10.0.0.1", "10.0.0.2"] and c.ping_interval == 0.5
    assert c.deadping == 3.0
    p = only(in_cluster('ping = ["10.0.0.1"]', 'ping_interval = "2s"'))
    assert p.key == "cluster.deadping" and "3s must be at least twice ping_interval" in p.message
    p = only(in_cluster('ping = ["fd00::1"]'))
    assert p.key == "cluster.ping" and "IPv4" in p.message


def test_disk_serial_links_witness_and_disk_fencing_parse() -> None:
    c = toml.parse(BASE + '''
[[link]]
mode = "disk"
device = "/dev/sdb1"

[[link]]
mode = "serial"
device = { n1 = "/dev/ttyS0", n2 = "/dev/ttyS1" }
baud = 115200

[witness]
address = "10.0.0.9"
lease = "2s"

[fencing]
agent = "disk"
''' + GROUP, "t.toml")
    disk, serial = c.links
    assert isinstance(disk, model.DiskLink) and disk.device_for("n2") == Path("/dev/sdb1")
    assert isinstance(serial, model.SerialLink) and serial.baud == 115200
    assert serial.device_for("n1") == Path("/dev/ttyS0")
    assert serial.device_for("n2") == Path("/dev/ttyS1")
    assert c.witness == model.Witness(ipaddress.ip_address("10.0.0.9"), 6940, 2.0, "witness")
    assert model.witness_lease(c) == 2.0
    assert c.fencing is not None and c.fencing.agent == "disk"
    assert model.partition_warning(c) is None


@pytest.mark.parametrize("keepalive,baud,ok", [("100ms", 19200, False), ("100ms", 115200, True),
                                               ("200ms", 19200, True)])
def test_a_serial_link_must_carry_one_heartbeat_per_keepalive(keepalive: str, baud: int,
                                                               ok: bool) -> None:
    from vigil.wire.framesize import serial_problem
    c = toml.parse(BASE.replace('key_file = "/etc/vigil/authkey"\n',
                                f'key_file = "/etc/vigil/authkey"\nkeepalive = "{keepalive}"\n'
                                f'warntime = "500ms"\ndeadtime = "1s"\n') +
                   f'[[link]]\nmode = "serial"\ndevice = "/dev/ttyS0"\nbaud = {baud}\n' + GROUP,
                   "t.toml")
    problem = serial_problem(c)
    assert (problem is None) == ok, problem
    if not ok:
        assert problem is not None and problem.key == "link", problem
        assert "/dev/ttyS0" in problem.message and "raise baud or keepalive" in problem.message


def test_agent_resources_and_group_policy_parse() -> None:
    c = toml.parse(BASE + '''
[[group]]
name = "web"
home = "n1"
[group.policy]
migration_threshold = 2
failure_timeout = "5m"
[[group.resource]]
type = "ocf"
agent = "ocf:heartbeat:Filesystem"
params = { device = "/dev/sdb5", directory = "/webdata", fstype = "ext3", force_unmount = true }
monitor = { interval = "5s" }
[[group.resource]]
type = "lsb"
name = "httpd"
monitor = false
[[group.resource]]
type = "systemd"
unit = "tomcat.service"
[[group.resource]]
type = "heartbeat"
script = "IPaddr::192.168.60.200/24/eth0"
[[group.resource]]
type = "heartbeat"
script = "drbddisk"
args = ["r0"]
[[group.resource]]
type = "filesystem"
device = "/dev/sdb5"
mountpoint = "/webdata"
fstype = "ext3"
options = "noatime"
''', "t.toml")
    g = c.groups[0]
    assert g.policy == model.GroupPolicy(2, 300.0)
    ocf, lsb, unit, ipaddr, drbd, fs = g.resources
    assert ocf == model.OcfResource("heartbeat:Filesystem", "web-0-filesystem", (
        ("device", "/dev/sdb5"), ("directory", "/webdata"), ("fstype", "ext3"),
        ("force_unmount", "true")), None, model.Monitor(5.0, None))
    assert lsb == model.LsbResource("httpd", 20.0, None)
    assert unit == model.SystemdResource("tomcat.service")
    assert ipaddr.name == "heartbeat:IPaddr::192.168.60.200/24/eth0"
    assert drbd == model.HeartbeatResource("drbddisk", ("r0",))
    assert fs == model.FilesystemResource(Path("/dev/sdb5"), Path("/webdata"), "ext3",
                                          "noatime")


RESOURCE_PROBLEMS = [
    ('type = "ocf"\nagent = "IPaddr2"\n', "agent", "provider:type"),
    ('type = "ocf"\nagent = "heartbeat:Dummy"\nparams = { "bad-name" = "x" }\n', "params",
     "environment variable name"),
    ('type = "ocf"\nagent = "heartbeat:Dummy"\nparams = { state = [1] }\n', "params",
     "expected a string or number"),
    ('type = "ocf"\nagent = "heartbeat:Dummy"\nmonitor = { every = "1s" }\n', "monitor",
     "unknown key 'every'"),
    ('type = "ocf"\nagent = "heartbeat:Dummy"\nmonitor = "often"\n', "monitor",
     "true or false"),
    ('type = "lsb"\nname = "../../bin/sh"\n', "name", "not a script name"),
    ('type = "systemd"\nunit = "tomcat"\n', "unit", "not a systemd unit name"),
    ('type = "heartbeat"\nscript = "/etc/ha.d/resource.d/IPaddr"\n', "script",
     "not a script name"),
    ('type = "filesystem"\ndevice = "/dev/sdb5"\nmountpoint = "/"\nfstype = "ext4"\n',
     "mountpoint", "root filesystem"),
    ('type = "filesystem"\ndevice = "/dev/sdb5"\nmountpoint = "/d"\nfstype = "ext4"\n'
     'options = "ro, noatime"\n', "options", "one comma-separated word"),
    ('type = "filesystem"\ndevice = "/dev/sdb5"\nmountpoint = "/d"\n', "fstype", "missing"),
    ('type = "exec"\nstart = ["/bin/true"]\nstop = ["/bin/true"]\nmonitor = true\n', "monitor",
     "add status"),
]


@pytest.mark.parametrize("body,key,message", RESOURCE_PROBLEMS,
                         ids=[m for _, _, m in RESOURCE_PROBLEMS])
def test_bad_agent_resources_are_named(body: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        toml.parse(BASE + '[[group]]\nname = "web"\nhome = "n1"\n[[group.resource]]\n' + body,
                   "t.toml")
    found = [(p.key, p.message) for p in e.value.problems]
    assert any(k == f"group[0].resource[0].{key}" and message in m for k, m in found), found


def test_group_policy_problems() -> None:
    with pytest.raises(ConfigError) as e:
        toml.parse(BASE + GROUP.replace('home = "n1"\n', 'home = "n1"\n[group.policy]\n'
                                        'migration_threshold = 0\nfailover = 1\n'), "t.toml")
    keys = {p.key for p in e.value.problems}
    assert keys == {"group[0].policy.migration_threshold", "group[0].policy.failover"}, keys


@pytest.mark.parametrize("name", ["c" * 300, "c" * 65, "é" * 33],
                         ids=["300 bytes", "65 bytes", "33 characters, 66 bytes"])
def test_a_cluster_name_longer_than_a_frame_carries_is_refused_at_its_line(name: str) -> None:
    p = only(replace('name = "web"', f'name = "{name}"'))
    assert (p.line, p.key) == (2, "cluster.name"), p
    size = len(name.encode())
    assert f"{size} bytes" in p.message and "at most 64 bytes" in p.message, p.message


def test_a_cluster_name_of_64_bytes_is_fine() -> None:
    assert toml.parse(replace('name = "web"', f'name = "{"c" * 32}{"é" * 16}"'),
                      "t.toml").name == "c" * 32 + "é" * 16


def test_witness_replies_must_fit_in_a_frame_too() -> None:
    from vigil.wire.framesize import frame_problem
    long_groups = "".join(
        f'[[group]]\nname = "{chr(97 + i) * 63}"\nhome = "n1"\n[[group.resource]]\n'
        f'type = "ip"\naddress = "192.168.10.{i + 1}/24"\ninterface = "eth0"\n'
        for i in range(11))
    c = toml.parse(BASE + long_groups, "t.toml")
    assert frame_problem(c) is None  # heartbeats fit
    c = toml.parse(BASE + '[witness]\naddress = "10.0.0.9"\n' + long_groups, "t.toml")
    problem = frame_problem(c)
    assert problem is not None and "witness ask" in problem.message, problem


def test_api_and_notify_parse_and_export_back() -> None:
    from vigil.config.export import to_toml
    text = BASE + GROUP + """
[api]
listen = "[::1]:9700"
token_file = "/etc/vigil/api.token"
cert_file = "/etc/vigil/api.crt"
key_file = "/etc/vigil/api.key"

[notify]
program = ["/usr/local/bin/page-me", "/usr/local/bin/dns-update"]
directory = "/etc/vigil/notify.d"
timeout = "5s"
"""
    c = toml.parse(text, "t.toml")
    assert c.api == model.Api("::1", 9700, Path("/etc/vigil/api.token"),
                              Path("/etc/vigil/api.crt"), Path("/etc/vigil/api.key"))
    assert c.notify == model.Notify((Path("/usr/local/bin/page-me"),
                                     Path("/usr/local/bin/dns-update")),
                                    Path("/etc/vigil/notify.d"), 5.0)
    again = toml.parse(to_toml(c), "again.toml")
    assert (again.api, again.notify) == (c.api, c.notify)
    one = toml.parse(BASE + GROUP + '[notify]\nprogram = "/bin/true"\n', "t.toml")
    assert one.notify == model.Notify((Path("/bin/true"),), None, 10.0)
    assert toml.parse(BASE + GROUP, "t.toml").api is None


@pytest.mark.parametrize("table,line,key,words", [
    ('[api]\nlisten = "9694"\n', 1, "api.listen", 'expected "ADDRESS:PORT"'),
    ('[api]\nlisten = "localhost:9694"\n', 1, "api.listen", 'expected "ADDRESS:PORT"'),
    ('[api]\nlisten = "127.0.0.1:70000"\n', 1, "api.listen", 'expected "ADDRESS:PORT"'),
    ('[api]\ntoken_file = "/t"\n', 0, "api.listen", "missing"),
    ('[api]\nlisten = "127.0.0.1:1"\ntoken_file = "t"\n', 2, "api.token_file",
     "absolute path"),
    ('[api]\nlisten = "127.0.0.1:1"\ncert_file = "/c"\n', 0, "api.key_file", "both"),
    ('[api]\nlisten = "127.0.0.1:1"\nport = 3\n', 2, "api.port", "unknown"),
    ('[notify]\ntimeout = "1s"\n', 0, "notify", "needs program"),
    ('[notify]\nprogram = "hook.sh"\n', 1, "notify.program", "absolute path"),
    ('[notify]\nprogram = []\n', 1, "notify.program", "absolute path"),
    ('[notify]\nprogram = "/x"\ntimeout = "0s"\n', 2, "notify.timeout", "longer than 0s"),
])
def test_api_and_notify_mistakes_are_named(table: str, line: int, key: str,
                                           words: str) -> None:
    p = only(BASE + GROUP + table)
    assert p.key == key and words in p.message, p
    if line:
        assert p.line == NEXT + GROUP.count("\n") + line, p
