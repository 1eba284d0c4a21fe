"""The Patroni anchor's pure parts (bench/pg_cluster.py) and the shared run loop's
(bench/pg_run.py): its configuration, the reading of the servers' answers and the verdicts
on the writer's lines.
The cluster itself needs root and the packages: `python -m bench.pg_failover` runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.pg_cluster import (PROFILES, NodeState, Timing, healthy_primary, parse_state,
                              patroni_config)
from bench.pg_run import WriterLog, measure, render, summarize
from vigil.lab.commits import Write

ADDR = {"dcs": "10.77.0.10", "n1": "10.77.0.11", "n2": "10.77.0.12", "client": "10.77.0.13"}


def test_profiles_keep_patronis_rule_and_a_bad_one_is_refused() -> None:
    for t in PROFILES.values():
        assert t.loop_wait + 2 * t.retry_timeout <= t.ttl
    assert PROFILES["default"] == Timing(30, 10, 10)
    with pytest.raises(ValueError, match="loop_wait"):
        Timing(ttl=10, loop_wait=5, retry_timeout=4)


def test_the_configuration_is_a_synchronous_pair_reachable_by_the_client() -> None:
    c = patroni_config("n2", ADDR, Path("/x"), PROFILES["tight"])
    dcs = c["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (10, 1, 4)
    assert dcs["synchronous_mode"] is True
    assert dcs["postgresql"]["parameters"]["wal_log_hints"] == "on"
    assert c["etcd3"] == {"host": "10.77.0.10:2379"}
    assert c["restapi"]["listen"] == "10.77.0.12:8008"
    pg = c["postgresql"]
    assert pg["data_dir"] == "/x/n2/data" and pg["parameters"]["unix_socket_directories"] == (
        "/x/n2/sock")
    assert pg["use_pg_rewind"] and pg["bin_dir"] == "/usr/lib/postgresql/15/bin"
    assert "host all all 10.77.0.13/32 trust" in pg["pg_hba"]
    assert "host replication replicator 10.77.0.11/32 trust" in pg["pg_hba"]
    v2 = patroni_config("n1", ADDR, Path("/x"), PROFILES["tight"], dcs="etcd")
    assert "etcd3" not in v2 and v2["etcd"] == {"host": "10.77.0.10:2379"}
    json.dumps(c)  # written as JSON, which Patroni reads as YAML


def test_states_are_parsed_and_the_pair_is_whole_only_when_streaming() -> None:
    p = parse_state("f|n2:streaming:sync|\n")
    s = parse_state("t||streaming\n")
    assert p == NodeState(True, {"n2": ("streaming", "sync")}, "")
    assert s == NodeState(False, {}, "streaming")
    assert parse_state("") is None and parse_state("psql: error") is None
    assert healthy_primary({"n1": p, "n2": s}, {"n1"}, sync=True) == "n1"
    assert healthy_primary({"n1": p, "n2": s}, {"n2"}) is None  # not the one expected
    assert healthy_primary({"n1": p, "n2": None}, {"n1"}) is None  # n2 does not answer
    catching_up = parse_state("f|n2:catchup:async|")
    assert healthy_primary({"n1": catching_up, "n2": s}, {"n1"}) is None
    async_ = parse_state("f|n2:streaming:async|")
    assert healthy_primary({"n1": async_, "n2": s}, {"n1"}) == "n1"
    assert healthy_primary({"n1": async_, "n2": s}, {"n1"}, sync=True) is None
    assert healthy_primary({"n1": p, "n2": p}, {"n1", "n2"}) is None  # two primaries


def test_measure_counts_a_hung_write_in_the_ack_gap_but_not_in_the_outage() -> None:
    acks = [Write(i, True, float(i)) for i in range(1, 6)]
    # A freeze: the write after 5 hangs until 45, fails, and the retry is acknowledged.
    frozen = acks + [Write(6, False, 45.0, "server closed"), Write(6, True, 45.1)]
    m = measure(frozen, fault_at=5.5)
    assert m == {"outage_s": pytest.approx(0.1), "outages": 1,
                 "ack_gap_s": pytest.approx(40.1), "failed_writes": 1}
    # A kill: writes fail at once for 10 s.
    failing = [Write(6 + i, False, 6.0 + i) for i in range(10)] + [Write(16, True, 16.5)]
    m = measure(acks + failing, fault_at=5.5)
    assert (m["outage_s"], m["outages"], m["failed_writes"]) == (10.5, 1, 10)
    assert m["ack_gap_s"] == pytest.approx(11.5)
    assert measure(acks, fault_at=5.5) == {"outage_s": 0.0, "outages": 0, "ack_gap_s": None,
                                           "failed_writes": 0}


def test_the_writer_log_reads_whole_lines_only(tmp_path: Path) -> None:
    f = tmp_path / "w.out"
    f.write_text('{"n": 1, "ok": true, "at": 1.0}\n{"n": 2, "ok": fal')
    log = WriterLog(f)
    assert [w.n for w in log.refresh()] == [1] and log.last_ack == 1.0
    with f.open("a") as out:
        out.write('se, "at": 2.0, "error": "x"}\n{"n": 2, "ok": true, "at": 3.0}\n')
    assert [(w.n, w.ok) for w in log.refresh()] == [(1, True), (2, False), (2, True)]
    assert log.last_ack == 3.0
    assert WriterLog(tmp_path / "missing").refresh() == []


def test_summaries_leave_broken_runs_out_and_render() -> None:
    ok = {"outage_s": 10.0, "ack_gap_s": 10.5, "promoted_s": 10.2, "lost": 0,
          "two_primaries_s": 0.0, "run_s": 30.0, "recovered": True}
    lossy = dict(ok, lost=2, outage_s=12.0)
    s = summarize([ok, lossy, {"error": "TimeoutError: x", "run_s": 120.0}])
    assert (s["runs"], s["recovered"], s["runs_losing_commits"]) == (3, 2, 1)
    assert s["outage_s"] == {"n": 2, "median": 11.0, "min": 10.0, "max": 12.0}
    assert s["run_s"]["n"] == 2
    text = render({"node_kill": {"summary": s}})
    assert "node_kill" in text and "2/3" in text and "11 (10-12)" in text
