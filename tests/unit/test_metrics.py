"""The hand-written Prometheus exposition, read back by prometheus_client's own parser."""

from __future__ import annotations

from typing import Any

from hypothesis import given, strategies as st
from prometheus_client.parser import text_string_to_metric_families

from vigil.daemon.bus import Event
from vigil.daemon.metrics import GAP_BUCKETS, Metrics


def status(group: str = "web", link: str = "eth0") -> dict[str, Any]:
    return {
        "cluster": "lab", "node": "n1", "version": "0.1.0", "uptime_s": 12.5, "status": "up",
        "nodes": [{"name": "n1", "self": True, "state": "up"},
                  {"name": "n2", "self": False, "state": "dead",
                   "links": [{"name": link, "state": "dead", "age_ms": 1234.5}]}],
        "frames": {"received": 42, "rejected": {"bad_mac": 3, "replay": 0}},
        "groups": [{"name": group, "state": "running", "owner": "n1", "fail_count": 2}],
    }


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_a_scrape_parses_and_says_what_happened() -> None:
    m = Metrics()
    for gap in (0.1, 0.1, 0.35, 2.0):
        m.heartbeat("eth0", gap, warntime=0.25)
    m.action("ip 10.0.0.1/24 on eth0", "start", True, 0.002)
    m.action("ip 10.0.0.1/24 on eth0", "stop", False, 1.5)
    m.acquired["peer_dead"] += 1
    m.event(Event(1, 0.0, "n1", "fenced", "n2", "ok"))
    v = parse(m.render(status(), hooks=(5, 1, 0)))
    assert v[("vigil_node_up", (("node", "n2"),))] == 0
    assert v[("vigil_link_up", (("link", "eth0"),))] == 0
    assert v[("vigil_heartbeat_age_seconds", (("link", "eth0"),))] == 1.2345
    assert v[("vigil_heartbeat_late_total", (("link", "eth0"),))] == 2
    assert v[("vigil_heartbeat_interval_seconds_count", (("link", "eth0"),))] == 4
    assert v[("vigil_heartbeat_interval_seconds_bucket", (("le", "0.1"), ("link", "eth0")))] == 2
    assert v[("vigil_heartbeat_interval_seconds_bucket", (("le", "+Inf"), ("link", "eth0")))] == 4
    assert v[("vigil_frames_rejected_total", (("reason", "bad_mac"),))] == 3
    assert v[("vigil_group_fail_count", (("group", "web"),))] == 2
    assert v[("vigil_group_acquisitions_total", (("cause", "peer_dead"),))] == 1
    assert v[("vigil_fencing_total", (("result", "ok"),))] == 1
    assert v[("vigil_resource_actions_total", (("action", "stop"),
                                               ("resource", "ip 10.0.0.1/24 on eth0"),
                                               ("result", "error")))] == 1
    assert v[("vigil_notify_failures_total", ())] == 1


@given(st.text(min_size=1, max_size=20), st.lists(st.floats(0, 20), max_size=30))
def test_any_names_and_gaps_read_back_exactly(name: str, gaps: list[float]) -> None:
    m = Metrics()
    for g in gaps:
        m.heartbeat(name, g, warntime=0.25)
    v = parse(m.render(status(group=name, link=name)))
    assert v[("vigil_group_running", (("group", name),))] == 1
    assert v[("vigil_heartbeat_late_total", (("link", name),))] == sum(g > 0.25 for g in gaps)
    if gaps:
        counts = [v[("vigil_heartbeat_interval_seconds_bucket",
                     (("le", repr(float(b))), ("link", name)))] for b in GAP_BUCKETS]
        assert counts == sorted(counts) and counts[-1] <= len(gaps)
        assert counts == [sum(g <= b for g in gaps) for b in GAP_BUCKETS]


def balancer(name: str = "web") -> dict[str, Any]:
    server = {"address": "10.0.1.11:80", "weight": 3, "health": "up", "drained": False,
              "taking": True, "last_check": "ok", "latency_ms": 4.5, "checks_ok": 7,
              "checks_failed": 2, "flaps": 1,
              "traffic": {"connections": 12, "packets_in": 40, "bytes_in": 3000,
                          "packets_out": 38, "bytes_out": 90000}}
    down = {**server, "address": "[fd00::2]:80", "health": "down", "taking": False,
            "latency_ms": None, "checks_ok": 0, "traffic": None}
    return {"virtual_servers": [{"name": name, "directing": True, "below_quorum": False,
                                 "servers": [server, down]}],
            "last_error": None,
            "conntrack_sync": {"running": True, "pid": 7, "role": "active", "restarts": 2,
                               "last_error": None, "directory": "/run/vigil/x"}}


def test_the_balancer_s_metrics_read_back() -> None:
    v = parse(Metrics().render({**status(), "balancer": balancer()}))
    one = (("server", "10.0.1.11:80"), ("virtual_server", "web"))
    two = (("server", "[fd00::2]:80"), ("virtual_server", "web"))
    assert v[("vigil_lb_directing", (("virtual_server", "web"),))] == 1
    assert v[("vigil_lb_below_quorum", (("virtual_server", "web"),))] == 0
    assert v[("vigil_lb_real_server_up", one)] == 1 and v[("vigil_lb_real_server_up", two)] == 0
    assert v[("vigil_lb_real_server_taking", two)] == 0
    assert v[("vigil_lb_real_server_weight", one)] == 3
    assert v[("vigil_lb_checks_total", (("result", "failed"),) + one)] == 2
    assert v[("vigil_lb_checks_total", (("result", "ok"),) + one)] == 7
    assert v[("vigil_lb_check_duration_seconds", one)] == 0.0045
    assert ("vigil_lb_check_duration_seconds", two) not in v  # never checked: no sample
    assert v[("vigil_lb_flaps_total", one)] == 1
    assert v[("vigil_lb_connections_total", one)] == 12
    assert v[("vigil_lb_bytes_total", (("direction", "out"),) + one)] == 90000
    assert v[("vigil_lb_packets_total", (("direction", "in"),) + one)] == 40
    assert ("vigil_lb_connections_total", two) not in v  # not counted: no sample
    assert v[("vigil_lb_conntrack_sync_running", (("role", "active"),))] == 1
    assert v[("vigil_lb_conntrack_sync_restarts_total", ())] == 2
    plain = parse(Metrics().render({**status(), "balancer": None}))
    assert not any(name.startswith("vigil_lb_") for name, _ in plain)


@given(st.text(min_size=1, max_size=20))
def test_any_virtual_server_name_reads_back(name: str) -> None:
    v = parse(Metrics().render({**status(), "balancer": balancer(name)}))
    assert v[("vigil_lb_directing", (("virtual_server", name),))] == 1
