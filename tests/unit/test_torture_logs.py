"""The torture's reading of a node's log after a run (vigil/lab/torture_logs.py)."""

from __future__ import annotations

from vigil.lab.cluster import RESET_LINE
from vigil.lab.torture_logs import log_violations, started_twice

START = "12:00:00 vigil: INFO: exec appd start: ok"
STOP = "12:00:01 vigil: INFO: exec appd stop: ok"
GUARD_STOP = "12:00:01 vigil: INFO: guard: exec appd stop: ok"


def test_a_clean_log_and_the_errors_faults_explain_are_no_violation() -> None:
    text = "\n".join([START, "12:00:02 vigil: ERROR: guard: daemon died (signal 9)", STOP,
                      "12:00:03 vigil: ERROR: n2 is dead and this node holds no lease of the "
                      "witness on group g1: stopping it", START])
    assert log_violations("n1", text) == []


def test_a_traceback_and_an_unexplained_error_are_named_with_the_node() -> None:
    text = "\n".join(["a", "b", "Traceback (most recent call last):", '  File "x.py"',
                      "12:00:04 vigil: ERROR: something nobody injected",
                      "12:00:05 vigil: ERROR: a second one"])
    found = log_violations("n2", text)
    assert [k for k, _ in found] == ["log", "log"]
    assert found[0][1].startswith("traceback in n2's log:\na\nb\nTraceback")
    assert found[1][1] == "unexplained error on n2: 12:00:04 vigil: ERROR: something " \
                          "nobody injected", "the first one only"


def test_starts_must_alternate_with_stops_the_guards_and_a_reset_included() -> None:
    assert started_twice("\n".join([START, GUARD_STOP, START])) is None
    assert started_twice("\n".join([START, RESET_LINE, START])) is None
    assert started_twice("\n".join([START, STOP, START, START])) == "exec appd"
    ip = "vigil: INFO: ip 10.9.0.100/24 on eth0 start: ok"
    assert started_twice("\n".join([ip, START, ip])) == "ip 10.9.0.100/24 on eth0"
    assert log_violations("n1", "\n".join([START, START])) == [
        ("start_stop", "exec appd started twice on n1 without a stop")]
