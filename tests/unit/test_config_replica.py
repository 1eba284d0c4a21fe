"""vigil.config.toml_replica: the postgresql resource and promotable groups in vigil.toml,
their problems at their lines, and their way back out through export.to_toml."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from vigil import model
from vigil.config import toml
from vigil.config.export import to_toml
from vigil.errors import ConfigError, ConfigProblem
from vigil.replica.model import PostgresqlResource

# Lines: 1 [cluster], 5 [[node]] n1 (10.0.0.1), 9 [[node]] n2 (10.0.0.2); 12 is next.
BASE = """\
[cluster]
name = "db"
key_file = "/etc/vigil/authkey"

[[node]]
name = "n1"
address = "10.0.0.1"

[[node]]
name = "n2"
address = "10.0.0.2"
"""
NEXT = BASE.count("\n") + 1
# Lines from NEXT: +0 [[group]], +3 promotable, +4 [[group.resource]], +5 type, +6 data_dir;
# what a test appends is at NEXT + 7.
PG = """\
[[group]]
name = "db"
home = "n1"
promotable = true
[[group.resource]]
type = "postgresql"
data_dir = "/var/lib/postgresql/15/main"
"""
AT = NEXT + PG.count("\n")
DATA = Path("/var/lib/postgresql/15/main")
ip = ipaddress.ip_address


def problems(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        toml.parse(text, "t.toml")
    assert all(p.file == "t.toml" for p in info.value.problems)
    return info.value.problems


def only(text: str) -> ConfigProblem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def pg(text: str) -> PostgresqlResource:
    r = toml.parse(text, "t.toml").groups[0].replica
    assert r is not None
    return r


# --- what parses ---------------------------------------------------------------------------


def test_a_full_postgresql_resource_parses_to_the_model() -> None:
    c = toml.parse(BASE + """\
[[group]]
name = "db"
home = "n1"
promotable = true
[[group.resource]]
type = "ip"
address = "192.168.10.200/24"
interface = "eth0"
[[group.resource]]
type = "postgresql"
data_dir = "/srv/pg/main"
bin_dir = "/usr/lib/postgresql/16/bin"
port = 5433
user = "pg"
replication_user = "standby_1"
password_file = "/etc/vigil/replication.pw"
socket_dir = "/run/pg"
log_file = "/var/log/pg/main.log"
synchronous = "strict"
max_lag = "16MB"
wal_keep_size = "2GB"
max_slot_wal_keep_size = "16GB"
timeout = "3m"
monitor = { interval = "5s", timeout = "3s" }
pre_promote = ["/usr/local/bin/may-promote", "db"]
[group.resource.hosts]
n1 = "192.168.10.1"
n2 = "192.168.10.2"
""", "t.toml")
    (g,) = c.groups
    assert g.promotable and g.replica is g.resources[1]
    assert g.replica == PostgresqlResource(
        data_dir=Path("/srv/pg/main"),
        hosts=(("n1", ip("192.168.10.1")), ("n2", ip("192.168.10.2"))),
        bin_dir=Path("/usr/lib/postgresql/16/bin"), port=5433, user="pg",
        replication_user="standby_1", password_file=Path("/etc/vigil/replication.pw"),
        socket_dir=Path("/run/pg"), log_file=Path("/var/log/pg/main.log"),
        synchronous="strict", max_lag=16 << 20, wal_keep_size="2GB",
        max_slot_wal_keep_size="16GB", timeout=180.0,
        monitor=model.Monitor(5.0, 3.0), pre_promote=("/usr/local/bin/may-promote", "db"))


def test_a_minimal_resource_takes_the_models_defaults() -> None:
    c = toml.parse(BASE + PG + '[[group]]\nname = "web"\nhome = "n2"\n[[group.resource]]\n'
                   'type = "ip"\naddress = "192.168.10.200/24"\n', "t.toml")
    db, web = c.groups
    assert db.resources == (PostgresqlResource(DATA),) and db.promotable
    assert db.replica is not None and db.replica.monitor == model.Monitor(interval=2.0)
    assert db.replica.timeout == 120.0 and db.replica.policy.max_lag == 1 << 20
    assert not web.promotable and web.replica is None


@pytest.mark.parametrize("value,mode", [("true", "on"), ("false", "off"), ('"on"', "on"),
                                        ('"off"', "off"), ('"strict"', "strict")])
def test_synchronous_takes_its_words_and_booleans(value: str, mode: str) -> None:
    assert pg(BASE + PG + f"synchronous = {value}\n").synchronous == mode


@pytest.mark.parametrize("value,size", [
    ("0", 0), ("1048576", 1 << 20), ('"512kB"', 512 << 10), ('"16MB"', 16 << 20),
    ('"1GB"', 1 << 30), ('"2TB"', 2 << 40), ("9223372036854775807", (1 << 63) - 1)])
def test_max_lag_is_bytes_or_a_size(value: str, size: int) -> None:
    assert pg(BASE + PG + f"max_lag = {value}\n").max_lag == size


@pytest.mark.parametrize("monitor,expected", [
    ("true", model.Monitor(2.0)), ('{ timeout = "1s" }', model.Monitor(2.0, 1.0)),
    ('{ interval = "10s" }', model.Monitor(10.0)), ("false", None)])
def test_the_monitor_keeps_its_own_two_second_interval(monitor: str,
                                                        expected: model.Monitor | None) -> None:
    assert pg(BASE + PG + f"monitor = {monitor}\n").monitor == expected


def test_a_node_outside_hosts_replicates_over_its_heartbeat_address() -> None:
    assert pg(BASE + PG + 'hosts = { n2 = "10.0.0.12" }\n').hosts == (("n2", ip("10.0.0.12")),)


# --- each mistake at its key and line ---------------------------------------------------------


BAD = [
    ('data_dir = "pg/main"', "data_dir", "expected an absolute path"),
    ('data_dir = "/"', "data_dir", "cannot be a data directory"),
    ('data_dir = "/var/lib/../pg"', "data_dir", "without '..'"),
    ('hosts = "10.0.0.1"', "hosts", "expected a table of node = address"),
    ('hosts = { n3 = "10.0.0.3" }', "hosts.n3", "'n3' is not a node; nodes: n1, n2"),
    ('hosts = { n1 = "10.0.0.300" }', "hosts.n1", "not an IPv4 or IPv6 address"),
    ('hosts = { n1 = "10.0.0.1/24" }', "hosts.n1", "takes no prefix length"),
    ('hosts = { n1 = "127.0.0.1" }', "hosts.n1", "loopback"),
    ('hosts = { n1 = "fe80::1%eth0" }', "hosts.n1", "no scope id"),
    ('hosts = { n1 = "10.0.0.5", n2 = "10.0.0.5" }', "hosts.n2", "already n1's address"),
    ('bin_dir = "bin"', "bin_dir", "absolute path"),
    ("port = 0", "port", "expected 1 to 65535"),
    ("port = 70000", "port", "expected 1 to 65535"),
    ('port = "5432"', "port", "expected an integer from 1 to 65535"),
    ('user = "root"', "user", "PostgreSQL runs as its own user, never as root"),
    ('user = "Post Gres"', "user", "expected a plain user name"),
    ('replication_user = "Repl-1"', "replication_user", "plain lower-case role name"),
    ('password_file = "pw"', "password_file", "absolute path"),
    ('socket_dir = "run"', "socket_dir", "absolute path"),
    ('log_file = "pg.log"', "log_file", "absolute path"),
    ('synchronous = "sometimes"', "synchronous", 'expected "on", "off" or "strict"'),
    ("synchronous = 1", "synchronous", "found an integer"),
    ("max_lag = -1", "max_lag", "out of range"),
    ('max_lag = "16 MB"', "max_lag", 'a size such as "16MB"'),
    ('max_lag = "16"', "max_lag", 'a size such as "16MB"'),
    ('max_lag = "16mb"', "max_lag", 'a size such as "16MB"'),
    ("max_lag = true", "max_lag", "found a boolean"),
    ('max_lag = "999999999TB"', "max_lag", "out of range"),
    ('wal_keep_size = "1 GB"', "wal_keep_size", "a size such as 1GB"),
    ("wal_keep_size = 1024", "wal_keep_size", "found an integer"),
    ('max_slot_wal_keep_size = "-2"', "max_slot_wal_keep_size", "-1 (no bound) or a size"),
    ("max_slot_wal_keep_size = -1", "max_slot_wal_keep_size", "found an integer"),
    ('timeout = "0s"', "timeout", "longer than 0s"),
    ('monitor = { every = "1s" }', "monitor", "unknown key 'every'"),
    ('slot = "vigil_n1"', "slot", "valid keys: type, data_dir, hosts, bin_dir"),
]


@pytest.mark.parametrize("line,key,says", BAD, ids=[b[0] for b in BAD])
def test_each_bad_value_is_named_at_its_line(line: str, key: str, says: str) -> None:
    key_name = line.split(" = ")[0]  # data_dir replaces PG's own, at the same line
    p = only((BASE + PG).replace(f"{key_name} = ", "# was: ", 1) + line + "\n")
    assert (p.line, p.key) == (AT, f"group[0].resource[0].{key}"), p
    assert says in p.message, p.message


def test_data_dir_is_required() -> None:
    p = only(BASE + PG.replace('data_dir = "/var/lib/postgresql/15/main"\n', ""))
    assert (p.line, p.key) == (NEXT + 4, "group[0].resource[0].data_dir"), p
    assert p.message == "required key is missing"


def test_a_host_in_a_sub_table_is_named_at_its_own_line() -> None:
    p = only(BASE + PG + '[group.resource.hosts]\nn1 = "10.0.0.11"\nn2 = "localhost"\n')
    assert (p.line, p.key) == (AT + 2, "group[0].resource[0].hosts.n2"), p


# --- the group's rules -----------------------------------------------------------------------


def test_a_postgresql_resource_needs_a_promotable_group() -> None:
    p = only(BASE + PG.replace("promotable = true\n", ""))
    assert (p.line, p.key) == (NEXT, "group[0].promotable"), p
    assert "group[0].resource[0] is a postgresql resource" in p.message
    assert p.message.endswith("add promotable = true to the group")
    p = only(BASE + PG.replace("promotable = true", "promotable = false"))
    assert (p.line, p.key) == (NEXT + 3, "group[0].promotable"), p


def test_promotable_is_a_boolean() -> None:
    p = only(BASE + PG.replace("promotable = true", 'promotable = "yes"'))
    assert (p.line, p.key) == (NEXT + 3, "group[0].promotable"), p
    assert "expected true or false" in p.message


def test_a_promotable_group_needs_a_postgresql_resource() -> None:
    text = BASE + PG.replace('type = "postgresql"\ndata_dir = "/var/lib/postgresql/15/main"',
                             'type = "ip"\naddress = "192.168.10.200/24"')
    p = only(text)
    assert (p.line, p.key) == (NEXT + 3, "group[0].promotable"), p
    assert "this group has none" in p.message and 'type = "postgresql"' in p.message


def test_a_promotable_group_holds_one_postgresql_resource() -> None:
    p = only(BASE + PG + '[[group.resource]]\ntype = "postgresql"\ndata_dir = "/srv/other"\n')
    assert (p.line, p.key) == (AT + 1, "group[0].resource[1].type"), p
    assert "group[0].resource[0] is one already" in p.message


def test_two_groups_cannot_share_a_data_directory() -> None:
    second = PG.replace('name = "db"', 'name = "db2"').replace('"n1"', '"n2"')
    p = only(BASE + PG + second)
    assert (p.line, p.key) == (AT + 6, "group[1].resource[0].data_dir"), p
    assert p.message == (f"{DATA} is already the data directory of group[0].resource[0]; each "
                         f"postgresql resource needs its own")


NO_ADDRESSES = """\
[cluster]
name = "db"
key_file = "/etc/vigil/authkey"
[[node]]
name = "n1"
[[node]]
name = "n2"
[[link]]
mode = "bcast"
interface = "eth1"
"""


def test_every_node_needs_an_address_to_replicate_over() -> None:
    start = NO_ADDRESSES.count("\n") + 1
    p = only(NO_ADDRESSES + PG + 'hosts = { n1 = "10.0.0.1" }\n')
    assert (p.line, p.key) == (start + 7, "group[0].resource[0].hosts"), p
    assert p.message.startswith("node 'n2' has no address to replicate over")
    assert 'hosts = { n2 = "10.0.0.1" }' in p.message
    found = problems(NO_ADDRESSES + PG)  # no hosts at all: both, at the resource's table
    assert [(x.line, x.key) for x in found] == [(start + 4, "group[0].resource[0].hosts")] * 2
    c = toml.parse(NO_ADDRESSES + PG + 'hosts = { n1 = "10.0.0.1", n2 = "10.0.0.2" }\n', "t")
    assert c.groups[0].replica is not None


def test_a_host_address_is_the_nodes_own() -> None:
    p = only(BASE + PG + 'hosts = { n1 = "10.0.0.2" }\n')
    assert (p.line, p.key) == (AT, "group[0].resource[0].hosts.n1"), p
    assert p.message == "10.0.0.2 is node n2's heartbeat address; give n1 an address of its own"
    assert pg(BASE + PG + 'hosts = { n1 = "10.0.0.1" }\n').hosts == (("n1", ip("10.0.0.1")),)


def test_both_nodes_replicate_over_one_ip_version() -> None:
    p = only(BASE + PG + 'hosts = { n2 = "fd00::2" }\n')
    assert (p.line, p.key) == (AT, "group[0].resource[0].hosts"), p
    assert "IPv4 and IPv6 (n1 10.0.0.1, n2 fd00::2)" in p.message


def test_node_names_that_share_a_replication_slot_are_refused() -> None:
    text = BASE.replace('"n1"', '"db.1"').replace('"n2"', '"db-1"')
    p = only(text + PG.replace('"n1"', '"db.1"'))
    assert (p.line, p.key) == (NEXT + 5, "group[0].resource[0].type"), p
    assert "'db.1' and 'db-1' would share the replication slot 'vigil_db_1'" in p.message


# --- written back ------------------------------------------------------------------------------


def test_postgresql_and_promotable_export_back_to_the_same_model() -> None:
    text = BASE + PG + """\
hosts = { n1 = "192.168.10.1", n2 = "192.168.10.2" }
bin_dir = "/opt/pg/bin"
port = 6432
user = "pg"
replication_user = "rep"
password_file = "/etc/vigil/rep.pw"
socket_dir = "/run/pg"
log_file = "/var/log/pg.log"
synchronous = false
max_lag = 1000
wal_keep_size = "512MB"
max_slot_wal_keep_size = "64GB"
timeout = "90s"
monitor = { timeout = "4s" }
pre_promote = ["/bin/sh", "-c", "exit 0"]
listen_addresses = "192.168.10.1,localhost"
[[group]]
name = "small"
home = "n2"
promotable = true
[[group.resource]]
type = "postgresql"
data_dir = "/srv/small"
[[group]]
name = "sized"
home = "n2"
promotable = true
[[group.resource]]
type = "postgresql"
data_dir = "/srv/sized"
max_lag = "3GB"
monitor = { interval = "10s" }
[[group]]
name = "web"
home = "n1"
[[group.resource]]
type = "ip"
address = "192.168.10.200/24"
"""
    c = toml.parse(text, "t.toml")
    written = to_toml(c)
    assert toml.parse(written, "again.toml").groups == c.groups
    small = written.split('name = "small"')[1].split("[[group]]")[0]
    assert small.split("\n[[group.resource]]\n")[1].strip() == \
        'type = "postgresql"\ndata_dir = "/srv/small"'  # the defaults are not written
    assert 'max_lag = "3GB"' in written and "max_lag = 1000" in written
    assert written.count("promotable = true") == 3


def test_a_postgresql_resource_after_the_address_is_warned_about() -> None:
    c = toml.parse(BASE + '[[group]]\nname = "db"\nhome = "n1"\npromotable = true\n'
                   '[[group.resource]]\ntype = "ip"\naddress = "192.168.10.200/24"\n'
                   '[[group.resource]]\ntype = "postgresql"\ndata_dir = "/srv/pg"\n', "t.toml")
    (w,) = [w for w in model.config_warnings(c) if "postgresql" in w]
    assert w.startswith("group db: its postgresql resource is not the first: ip ")
    ok = toml.parse(BASE + PG, "t.toml")
    assert not [w for w in model.config_warnings(ok) if "postgresql" in w]
