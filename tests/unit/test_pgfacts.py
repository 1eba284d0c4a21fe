"""replica/pgfacts.py and pghba.py, sans-IO: WAL positions, pg_controldata, pg_hba.conf,
the files vigil writes and the server's answers. Round trips where there is an inverse (libpq's own parser
for connection strings), and garbage everywhere: nothing but a ValueError escapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from vigil.replica import pgfacts as facts
from vigil.replica import pghba
from vigil.replica.pgfacts import PgSpec, format_lsn, parse_lsn

# The output of PostgreSQL 15's pg_controldata (LC_ALL=C) after initdb, as captured here.
CONTROLDATA = """\
pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7715107296380236757
Database cluster state:               shut down
pg_control last modified:             Thu Dec  3 15:56:38 2026
Latest checkpoint location:           0/17414D0
Latest checkpoint's REDO location:    0/17414D0
Latest checkpoint's REDO WAL file:    000000010000000000000001
Latest checkpoint's TimeLineID:       1
Latest checkpoint's PrevTimeLineID:   1
Latest checkpoint's full_page_writes: on
Latest checkpoint's NextXID:          0:724
Latest checkpoint's oldestCommitTsXid:0
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
Backup start location:                0/0
wal_level setting:                    replica
wal_log_hints setting:                off
Data page checksum version:           1
Mock authentication nonce:            d8e193f152d1cdfde85310a37f23c83c3434a5d040b51f9c1b60ac7b91ef46a4
"""
# initdb --auth-local=peer --auth-host=scram-sha-256 writes these entries.
INITDB_HBA = """\
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     peer
host    replication     all             127.0.0.1/32            scram-sha-256
"""


def spec(**changes: object) -> PgSpec:
    values: dict[str, object] = dict(
        data_dir=Path("/srv/pg/data"), host="10.0.0.1", peer_host="10.0.0.2",
        slot="vigil_n1", socket_dir=Path("/run/vigil-pg"))
    values.update(changes)
    return PgSpec(**values)  # type: ignore[arg-type]


# ---- WAL positions ----------------------------------------------------------------------


def test_lsn_examples() -> None:
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert parse_lsn("0/0") == 0 and format_lsn(0) == "0/0"
    assert format_lsn(0x16B374D848) == "16/B374D848"
    assert parse_lsn("ffffffff/ffffffff") == (1 << 64) - 1


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_lsn_round_trip(lsn: int) -> None:
    assert parse_lsn(format_lsn(lsn)) == lsn
    assert parse_lsn(format_lsn(lsn).lower()) == lsn


@pytest.mark.parametrize("bad", ["", "16", "16/", "/1", "1/2/3", "G/1", "123456789/0",
                                 " 1/2", "1/2 ", "1:2", "-1/2", "１/２"])
def test_bad_lsn_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="not a WAL position") as e:
        parse_lsn(bad)
    assert repr(bad) in str(e.value)


@given(st.text(max_size=30))
def test_lsn_garbage_raises_only_value_error(text: str) -> None:
    try:
        lsn = parse_lsn(text)
    except ValueError:
        return
    assert parse_lsn(format_lsn(lsn)) == lsn


def test_format_lsn_range() -> None:
    for bad in (-1, 1 << 64):
        with pytest.raises(ValueError, match="out of range"):
            format_lsn(bad)


def test_walfile_timeline() -> None:
    assert facts.timeline_of_walfile("00000002000000000000000A") == 2
    for bad in ("00000000000000000000000A", "0000000200000000000000", "x" * 24, None):
        with pytest.raises(ValueError):
            facts.timeline_of_walfile(bad)  # type: ignore[arg-type]


# ---- pg_controldata ---------------------------------------------------------------------


def test_controldata_of_a_fresh_cluster() -> None:
    cd = facts.parse_controldata(CONTROLDATA)
    assert cd == facts.ControlData(7715107296380236757, "shut down", 1, 0x17414D0, 0, 0)
    assert cd.clean and cd.position() == (1, 0x17414D0)


def test_position_of_a_standby_and_of_a_crashed_primary() -> None:
    standby = CONTROLDATA.replace("state:               shut down",
                                  "state:               shut down in recovery").replace(
        "location:     0/0", "location:     0/3000060").replace(
        "timeline:   0", "timeline:   2")
    cd = facts.parse_controldata(standby)
    assert cd.clean and cd.position() == (2, 0x3000060)
    crashed = facts.parse_controldata(CONTROLDATA.replace("shut down", "in production"))
    assert not crashed.clean and crashed.position() == (1, 0x17414D0)
    state = facts.stopped("not running", crashed)
    assert (state.role, state.lsn, state.system_id) == ("stopped", 0x17414D0, cd.system_id)
    assert state.problem == ("not running, and not shut down cleanly (state: in production): "
                             "its WAL goes at least to 0/17414D0, its last checkpoint")
    assert facts.stopped("not running", cd).problem == "not running"


@pytest.mark.parametrize("line", [
    "Database system identifier", "Database cluster state", "Latest checkpoint location",
    "Latest checkpoint's TimeLineID", "Minimum recovery ending location",
    "Min recovery ending loc's timeline"])
def test_controldata_missing_or_garbled_lines_are_named(line: str) -> None:
    lines = CONTROLDATA.splitlines()
    without = "\n".join(x for x in lines if not x.startswith(line + ":"))
    with pytest.raises(ValueError, match="has no " + repr(line).replace("'", ".")):
        facts.parse_controldata(without)
    garbled = "\n".join(x.split(":")[0] + ": \x00zz-1/" if x.startswith(line + ":") else x
                        for x in lines)
    with pytest.raises(ValueError):
        facts.parse_controldata(garbled)


@given(st.text(max_size=2000))
def test_controldata_garbage_raises_only_value_error(text: str) -> None:
    try:
        facts.parse_controldata(text)
    except ValueError:
        pass


@given(st.lists(st.sampled_from(CONTROLDATA.splitlines()), max_size=40),
       st.integers(0, 39), st.text(max_size=30))
def test_controldata_shuffled_and_edited_raises_only_value_error(
        lines: list[str], at: int, junk: str) -> None:
    if lines:
        lines[at % len(lines)] = lines[at % len(lines)].split(":")[0] + ":" + junk
    try:
        cd = facts.parse_controldata("\n".join(lines))
    except ValueError:
        return
    assert 0 <= cd.system_id < 1 << 64 and cd.position()[1] >= 0


# ---- the server's answers ---------------------------------------------------------------


def test_primary_and_standby_answers() -> None:
    p = facts.primary_state(-2, "000000020000000000000003", "0/3000148",
                            [("vigil_n2", "streaming", "sync", "0/3000148", None)], "vigil_n2")
    assert (p.role, p.system_id, p.timeline, p.lsn, p.problem) == (
        "primary", (1 << 64) - 2, 2, 0x3000148, None)
    assert p.standbys == (facts.Standby("vigil_n2", "streaming", "sync", 0x3000148, None),)
    s = facts.standby_state(7, "0/5", "0/6", "streaming", 3, 1, "")
    assert (s.role, s.timeline, s.lsn, s.receive_lsn, s.streaming, s.problem) == (
        "standby", 3, 5, 6, True, None)
    lost = facts.standby_state(7, "0/5", None, None, None, 1, "")
    assert (lost.timeline, lost.streaming) == (1, False)
    assert lost.problem == "standby is not streaming from its primary (WAL receiver: none)"


answers = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12),
                    st.floats(allow_nan=True), st.binary(max_size=4))


@given(st.lists(answers, min_size=7, max_size=7),
       st.lists(st.lists(answers, max_size=6), max_size=3))
def test_garbage_answers_raise_only_value_error(values: list[object],
                                                rows: list[list[object]]) -> None:
    for call in (lambda: facts.primary_state(values[0], values[1], values[2], rows, values[3]),
                 lambda: facts.standby_state(*values)):
        try:
            call()
        except ValueError:
            pass


# ---- pg_hba.conf ------------------------------------------------------------------------


def test_vigil_block_before_initdb_entries_is_enough() -> None:
    s = spec()
    assert pghba.hba_problems(s, pghba.render_hba(s, hosts=True) + INITDB_HBA, "hba") == []
    # Without the host entries (an init_primary cut short): both peer entries missing.
    problems = pghba.hba_problems(s, pghba.render_hba(s, hosts=False) + INITDB_HBA, "hba")
    assert problems == [
        "hba has no entry for replication connections of replicator from 10.0.0.2",
        "hba has no entry for connections of replicator to database postgres from 10.0.0.2 "
        "(pg_rewind, slots)"]


def test_initdb_alone_does_not_let_root_in() -> None:
    problems = pghba.hba_problems(spec(), INITDB_HBA, "/d/pg_hba.conf")
    assert problems[-1] == ("/d/pg_hba.conf line 2 (peer) does not let root in as postgres: "
                            "vigil needs 'peer map=...' (pg_ident.conf) or trust")


@pytest.mark.parametrize("entry, problem", [
    ("host all all 10.0.0.0/8 trust", "no entry for replication"),  # all is not replication
    ('host "replication" replicator 10.0.0.2/32 trust', "no entry for replication"),
    ("host replication replicator 10.0.0.2/32 reject", "line 1 rejects replication"),
    ("host replication other,more 10.0.0.2/32 trust", "no entry for replication"),
    ("host replication replicator 10.0.0.3/32 trust", "no entry for replication"),
])
def test_hba_entries_that_do_not_let_the_peer_replicate(entry: str, problem: str) -> None:
    text = entry + "\nhost postgres replicator 10.0.0.2/32 trust\nlocal all postgres trust\n"
    problems = pghba.hba_problems(spec(), text, "hba")
    assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize("entry", [
    "host replication replicator 10.0.0.2/32 trust",
    "host replication replicator 10.0.0.2 255.255.255.255 scram-sha-256",
    "hostnossl  replication,all  foo , replicator  10.0.0.0/24  md5  # a comment",
    "host replication all all trust",
    "hostssl replication replicator 10.0.0.2/32 cert",  # SSL: cannot tell, so no complaint
    "host replication +replicators 10.0.0.2/32 trust",  # a group: likewise
    "host \\\n  replication replicator 10.0.0.2/32 trust",  # continued on the next line
])
def test_hba_entries_that_let_the_peer_replicate(entry: str) -> None:
    text = entry + "\nhost postgres replicator 10.0.0.2/32 trust\nlocal all postgres trust\n"
    assert pghba.hba_problems(spec(), text, "hba") == []


def test_hba_mask_form_keeps_the_method_in_place() -> None:
    (entry,) = pghba.parse_hba("host all all 10.0.0.0 255.0.0.0 peer map=vigil\n")
    assert (entry.method, entry.options) == ("peer", ("map=vigil",))


@given(st.text(max_size=400))
def test_hba_garbage_never_raises(text: str) -> None:
    pghba.hba_problems(spec(), text, "hba")


@given(st.lists(st.sampled_from(["host", "local", "replication", "all", "postgres", '"x y"',
                                 "replicator", "10.0.0.2/32", "10.0.0.2", "255.255.255.0",
                                 "trust", "reject", "peer", "map=vigil", ",", "#", "\\", "\n",
                                 "@file", "+group", '"', "samenet", "::1/128"]), max_size=40))
def test_hba_shaped_garbage_never_raises(words: list[str]) -> None:
    pghba.hba_problems(spec(), " ".join(words), "hba")


# ---- the files vigil writes -------------------------------------------------------------


def _unquote_conf(quoted: str) -> str:
    """postgresql.conf's reading of a quoted string (guc-file.l: '' and backslash escapes)."""
    assert quoted[0] == quoted[-1] == "'"
    out, i, body = [], 0, quoted[1:-1]
    while i < len(body):
        if body[i] == "\\" or body[i:i + 2] == "''":
            out.append(body[i + 1])
            i += 2
        else:
            assert body[i] != "'"
            out.append(body[i])
            i += 1
    return "".join(out)


@given(st.text(alphabet=st.characters(blacklist_characters="\n\r\x00"), max_size=40))
def test_conf_quoting_round_trip(value: str) -> None:
    assert _unquote_conf(facts.quote_conf(value)) == value


@given(st.text(alphabet=st.characters(blacklist_characters="\x00",
                                      blacklist_categories=("Cs",)), max_size=40))
def test_conninfo_round_trip_through_libpq(value: str) -> None:
    assert conninfo_to_dict(facts.conninfo(password=value, port=5432)) == {
        "password": value, "port": "5432"}


def test_quote_conf_refuses_newlines() -> None:
    with pytest.raises(ValueError, match="one line"):
        facts.quote_conf("a\nb")


def test_vigil_conf_for_a_standby() -> None:
    s = spec(replication_password="it's \\ secret", socket_dir=Path("/run/o'dd dir"))
    text = facts.render_vigil_conf(s, ("10.0.0.2", 5433))
    settings = facts.conf_settings(text)
    assert set(settings) == set(facts.MANAGED)
    assert _unquote_conf(settings["unix_socket_directories"]) == "/run/o'dd dir"
    info = conninfo_to_dict(_unquote_conf(settings["primary_conninfo"]))
    assert info == {"host": "10.0.0.2", "port": "5433", "user": "replicator",
                    "application_name": "vigil_n1", "connect_timeout": "5",
                    "password": "it's \\ secret"}
    primary = facts.conf_settings(facts.render_vigil_conf(s, None))
    assert "primary_conninfo" not in primary and primary["wal_keep_size"] == "'1GB'"
    assert primary["max_slot_wal_keep_size"] == "'-1'"  # PostgreSQL's own: no bound
    bounded = facts.render_vigil_conf(spec(max_slot_wal_keep_size="16GB"), None)
    assert facts.conf_settings(bounded)["max_slot_wal_keep_size"] == "'16GB'"


def test_include_line_is_added_once() -> None:
    once = facts.with_include("max_connections = 100")
    assert once is not None and once.count(facts.INCLUDE_LINE) == 1
    assert facts.with_include(once) is None
    assert facts.with_include("#" + facts.INCLUDE_LINE + "\n") is not None  # commented out


def test_auto_conf_may_not_set_vigils_settings() -> None:
    auto = "# Do not edit\nsynchronous_standby_names = 'vigil_n2'\nport = 5433\n" \
           "Primary_Conninfo='host=x'\n"
    assert facts.auto_conf_problems(auto, "a.conf") == [
        "a.conf sets port, primary_conninfo, which vigil sets in vigil.conf "
        "(ALTER SYSTEM RESET them)"]
    assert facts.auto_conf_problems("synchronous_standby_names = 'a'\n", "a.conf") == []


def test_ident_maps_root_and_the_server_user() -> None:
    assert pghba.render_ident(spec()).splitlines()[1:] == [
        "vigil   root                   postgres", "vigil   postgres               postgres"]


# ---- names and the spec -----------------------------------------------------------------


@pytest.mark.parametrize("names", ["", "vigil_n2", "a,b_1"])
def test_sync_names_accepted(names: str) -> None:
    assert facts.check_sync_names(names) == names


@pytest.mark.parametrize("names", ["A", "a b", "a,", ",a", "'", "a;b", "a'; DROP TABLE t; --",
                                   '"a"', "ANY 1 (a)"])
def test_sync_names_refused(names: str) -> None:
    with pytest.raises(ValueError, match=r"\[a-z0-9_\]\+"):
        facts.check_sync_names(names)


@pytest.mark.parametrize("changes, message", [
    ({"slot": "Vigil"}, "slot must be"), ({"slot": "x" * 64}, "slot must be"),
    ({"host": "node1"}, "host must be an IP address"), ({"peer_host": "1.2.3"}, "1.2.3"),
    ({"data_dir": Path("data")}, "data_dir must be an absolute path"),
    ({"port": 0}, "port must be"), ({"replication_user": "Rep"}, "replication_user"),
    ({"replication_password": "a\nb"}, "one line"), ({"replication_password": ""}, "non-empty"),
    ({"wal_keep_size": "lots"}, "wal_keep_size"), ({"user": "a b"}, "user must be"),
])
def test_spec_refuses(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec(**changes)


def test_spec_log_path_is_beside_the_data_dir() -> None:
    assert spec().log_path == Path("/srv/pg/data.log")
    assert spec(log_file=Path("/var/log/pg.log")).log_path == Path("/var/log/pg.log")
