"""The pure parts of vigil's side of the replicated-PostgreSQL benchmark (bench/pg_vigil.py)
and of the entry point running both systems (bench/pg_failover.py). The clusters need root,
PostgreSQL and Patroni: `python -m bench.pg_failover` runs them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from bench.pg_cluster import healthy_primary, parse_state
from bench.pg_failover import labels, main, parse_list, render_both
from bench.pg_run import FAULTS, med, summarize
from bench.pg_vigil import APP, lab_timings
from vigil.lab.pgpair import client_hba, group_text


def test_the_group_is_promotable_synchronous_with_a_floating_address() -> None:
    text = group_text(Path("/tmp/lab"), "10.77.0.100", 'synchronous = "on"').replace(
        "@NODE@", "n2")
    group = tomllib.loads(text)["group"][0]
    assert group["name"] == "db" and group["home"] == "n1" and group["promotable"] is True
    pg, ip = group["resource"]
    assert pg == {"type": "postgresql", "data_dir": "/tmp/lab/n2/pg",
                  "socket_dir": "/tmp/lab/n2/sock", "synchronous": "on"}
    assert ip["type"] == "ip" and ip["address"] == "10.77.0.100/24"
    off = tomllib.loads(group_text(Path("/x"), "10.0.0.9", 'synchronous = "off"'))["group"][0]
    assert off["resource"][0]["synchronous"] == "off"


def test_the_client_network_line_and_the_timings() -> None:
    assert client_hba("10.77.0.13") == "host all all 10.77.0.0/24 trust\n"
    assert lab_timings(None) == {}  # LabCluster's own: keepalive 100 ms, deadtime 500 ms
    assert lab_timings(1.0) == {"keepalive": "200ms", "warntime": "500ms", "deadtime": "1s",
                                "initdead": "3s"}
    assert labels(None, "tight") == {"vigil": "vigil deadtime 500ms",
                                     "patroni": "patroni tight"}
    assert labels(1.0, "default")["vigil"] == "vigil deadtime 1s"
    assert labels(None, "tight", "off")["vigil"] == "vigil deadtime 500ms synchronous=off"


def test_a_vigil_pair_is_whole_by_its_standbys_application_names() -> None:
    assert APP == {"n1": "vigil_n1", "n2": "vigil_n2"}
    p = parse_state("f|vigil_n2:streaming:sync|")
    s = parse_state("t||streaming")
    assert healthy_primary({"n1": p, "n2": s}, {"n1"}, sync=True, names=APP) == "n1"
    assert healthy_primary({"n1": p, "n2": s}, {"n1"}) is None  # "n2" is not its name
    back = parse_state("f|vigil_n1:streaming:sync|")
    assert healthy_primary({"n1": s, "n2": back}, {"n2"}, names=APP) == "n2"


def test_lists_are_checked() -> None:
    assert parse_list("vigil, patroni,", ("vigil", "patroni"), "system(s)") == [
        "vigil", "patroni"]
    with pytest.raises(ValueError, match="unknown fault.s. nope; known: node_kill"):
        parse_list("node_kill,nope", FAULTS, "fault(s)")


def test_an_unknown_system_is_refused_before_anything_runs(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--systems", "vigil,pacemaker"])
    assert e.value.code == 2 and "unknown system(s) pacemaker" in capsys.readouterr().err


def _rec(**kw: Any) -> dict[str, Any]:
    base = {"outage_s": 1.0, "ack_gap_s": 1.2, "promoted_s": 0.8, "lost": 0,
            "two_primaries_s": 0.0, "run_s": 20.0, "recovered": True}
    return {**base, **kw}


def test_one_table_shows_both_systems_side_by_side_per_fault() -> None:
    results = {
        "vigil": {"node_kill": {"summary": summarize([_rec(), _rec(outage_s=3.0)])},
                  "freeze": {"summary": summarize([_rec(lost=2)])}},
        "patroni": {"node_kill": {"summary": summarize([_rec(outage_s=10.5)])},
                    "freeze": {"summary": summarize([{"error": "x", "run_s": 1.0}])}},
    }
    text = render_both(results, labels(None, "tight"))
    rows = text.splitlines()
    assert rows[0].split()[:3] == ["fault", "system", "recovered"]
    assert rows[2].split()[:6] == ["node_kill", "vigil", "deadtime", "500ms", "2/2", "2"]
    assert "2 (1-3)" in rows[2]
    assert rows[3].split()[:4] == ["patroni", "tight", "1/1", "10.5"]
    assert rows[4].startswith("freeze") and " 2 " in rows[4]  # lost: 2
    assert rows[5].split()[:3] == ["patroni", "tight", "0/1"] and rows[5].count("-") >= 5


def test_a_summary_without_spread_is_one_number() -> None:
    assert med({"median": 2.5, "min": 2.5, "max": 2.5}) == "2.5"
    assert med({"median": 2.0, "min": 1.0, "max": 3.5}) == "2 (1-3.5)"
    assert med({"median": None, "min": None, "max": None}) == "-"
