"""The checker's verdicts (vigil.lab.commits): outages, lost commits, two primaries."""

from __future__ import annotations

import json

from vigil.lab.commits import Write, ack_gaps, acknowledged, lost, outages, read_writes, two_primaries


def w(n: int, ok: bool, at: float) -> Write:
    return Write(n, ok, at)


def test_an_outage_runs_from_the_first_failed_write_to_the_next_acknowledged() -> None:
    ws = [w(1, True, 1.0), w(2, False, 2.0), w(2, False, 2.5), w(2, True, 3.25),
          w(3, True, 3.3), w(4, False, 5.0)]  # the last never recovered: not an outage yet
    assert outages(ws) == [(2.0, 1.25)]
    assert outages(ws, since=4.0) == []


def test_a_hanging_write_shows_as_a_silence_between_acknowledgements() -> None:
    ws = [w(1, True, 1.0), w(2, True, 1.01), w(3, False, 2.5), w(3, True, 2.6)]
    assert outages(ws) == [(2.5, 2.6 - 2.5)]
    assert ack_gaps(ws) == [(1.01, 2.6 - 1.01)]


def test_lost_is_acknowledged_and_absent_and_an_unacknowledged_row_may_be_either() -> None:
    ws = [w(1, True, 1.0), w(2, False, 2.0), w(3, True, 3.0)]
    assert acknowledged(ws) == {1, 3}
    assert lost(ws, [1, 2, 3]) == [] and lost(ws, [1]) == [3] and lost(ws, [1, 3]) == []


def test_writes_are_read_from_lines_and_a_cut_line_is_skipped() -> None:
    lines = [json.dumps({"n": 1, "ok": True, "at": 1.5}),
             json.dumps({"n": 2, "ok": False, "at": 2.0, "error": "refused"}), '{"n": 3, "o']
    assert read_writes(lines) == [Write(1, True, 1.5), Write(2, False, 2.0, "refused")]


def test_two_primaries_is_the_longest_overlap() -> None:
    lines = [json.dumps({"at": t, "primaries": p}) for t, p in (
        (0.0, ["a"]), (1.0, ["a", "b"]), (1.25, ["b"]), (2.0, []), (3.0, ["a", "b"]),
        (3.5, ["a"]))]
    assert two_primaries(lines) == 0.5
    assert two_primaries([json.dumps({"at": 0.0, "primaries": ["a"]})]) == 0.0
    still = [json.dumps({"at": 1.0, "primaries": ["a", "b"]})]
    assert two_primaries(still) == float("inf") and two_primaries(still, end=1.5) == 0.5
